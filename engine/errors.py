"""Errors raised by the graph engine; each message names the node(s) and what is wrong.

This module is also TF-1's `tf.errors`: `OpError` and the subclasses TF-1 code catches
(`InvalidArgumentError`, `FailedPreconditionError`, `NotFoundError`, `OutOfRangeError`).
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "FailedPreconditionError",
    "FeedError",
    "FormatVersionError",
    "GraphError",
    "InvalidArgumentError",
    "MissingVariableError",
    "NoGradientError",
    "NotFoundError",
    "OpError",
    "OpExecutionError",
    "OutOfRangeError",
    "SavedGraphError",
    "SignatureError",
    "UnknownOpError",
]


class GraphError(ValueError):
    """A graph that cannot be built or run as asked (wrong graph, cycle, bad fetch)."""


class OpError(GraphError):
    """TF-1's base of errors raised while running a graph."""


class InvalidArgumentError(OpError):
    """An op or a feed got a value it cannot take (TF-1's name)."""


class FailedPreconditionError(OpError):
    """The run needs state that is not there, e.g. an uninitialised variable (TF-1's name)."""


class NotFoundError(OpError):
    """A file or a named thing that does not exist (TF-1's name)."""


class OutOfRangeError(OpError):
    """An input is exhausted (TF-1's name)."""


class FeedError(InvalidArgumentError):
    """A placeholder that is missing from feed_dict, or fed a value of the wrong shape/dtype."""


class OpExecutionError(InvalidArgumentError):
    """An op (or its gradient) failed while running; names the op, its type and input shapes."""


class NoGradientError(GraphError, LookupError):
    """An op on the path between variables and loss has no registered gradient."""


class SavedGraphError(GraphError):
    """A graph that cannot be saved, or a directory that is not a loadable saved graph."""


class UnknownOpError(SavedGraphError):
    """The saved graph uses an op type not registered in this process."""


class ChecksumError(SavedGraphError):
    """A file's bytes do not match the manifest (or a file is missing or unlisted)."""


class MissingVariableError(SavedGraphError):
    """graph.json names a variable (or constant) whose value is not in the .npz."""


class FormatVersionError(SavedGraphError):
    """The directory was written by a newer (or unknown) format version."""


class SignatureError(GraphError):
    """A signature that does not exist, or inputs that do not match it."""
