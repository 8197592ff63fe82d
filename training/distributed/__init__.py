"""Data-parallel training as a Spark barrier stage (issue 8); see docs/distributed.md."""

from training.distributed.codec import MessageError, decode, encode
from training.distributed.collective import DistributedError
from training.distributed.driver import train_distributed

__all__ = ["DistributedError", "MessageError", "decode", "encode", "train_distributed"]
