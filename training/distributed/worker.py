"""What each task of the barrier stage runs: the trainer, with its steps synchronised.

Every task builds the same model from the same seed and draws the same shuffles and negatives
from the same seeded Generator, so every task knows each global batch; task r trains on the
r-th contiguous slice of it. With `sync_every` K = 1 the slices' gradients are all-reduced
before every step and all tasks apply the same update (synchronous SGD: the single-process
run over the same global batches). With K > 1 each task steps on its own slices and the
parameters are averaged every K steps and at the end of every epoch (local SGD); optimizer
slots stay per task.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from peppercorn.config import TrainingConfig
from training.data import Batch, batches, open_dataset, with_negatives
from training.distributed.apply import GradientApplier, is_row_sparse
from training.distributed.codec import encode
from training.distributed.collective import (
    Collective,
    DistributedError,
    average_arrays,
    pack_gradients,
    reduce_gradients,
)
from training.distributed.transport import StarAllGather
from training.graph import compute_gradients
from training.trainer import Trainer

__all__ = ["DistributedTrainer", "slice_bounds", "train_task"]


def slice_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """[start, stop) of task `rank`'s contiguous share of a batch of n rows (sizes differ by 1)."""
    return n * rank // size, n * (rank + 1) // size


class DistributedTrainer(Trainer):
    """A `Trainer` whose epochs run as one of `collective.size` data-parallel replicas."""

    def __init__(self, dataset, training: TrainingConfig, model_name: str, params: dict,
                 checkpoint_dir: Path, collective: Collective) -> None:  # fmt: skip
        super().__init__(dataset, training, model_name, params, checkpoint_dir, progress=False)
        self.collective = collective
        self.sync_every = training.distributed.sync_every
        pairs = [(g, v) for g, v in compute_gradients(self.model.loss) if g is not None]
        self.grad_nodes = [g for g, _ in pairs]
        self.variables = [v for _, v in pairs]
        self.sparse = [is_row_sparse(v) for v in self.variables]
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.applier = GradientApplier(self.optimizer, self.variables, self.sparse,
                                       self.model.graph)  # fmt: skip
        self.steps = 0
        self.compute_seconds = 0.0

    def _slice(self, batch: Batch) -> Batch:
        lo, hi = slice_bounds(len(batch), self.collective.size, self.collective.rank)
        return Batch(batch.users[lo:hi], batch.items[lo:hi], batch.labels[lo:hi])

    def run_epoch(self, epoch, rng, positives=None, exclude=None, label="epoch"):
        positives, exclude = positives or self.train, exclude or self.exclude
        loss_sum, samples, seconds = 0.0, 0, 0.0
        for users, items in positives.epoch_chunks(rng):
            rows = with_negatives(users, items, exclude, self.cfg.negatives, rng)
            start = time.perf_counter()
            for batch in batches(rows, self.cfg.batch_size):
                tag = [label, epoch, self.steps]
                part = self._slice(batch)
                if self.sync_every == 1:
                    loss_sum += self._synchronous_step(part, tag)
                else:
                    loss_sum += self._local_step(part, tag)
                samples += len(batch)
                self.steps += 1
            seconds += time.perf_counter() - start
        if self.sync_every > 1:
            # Every task evaluates (and early-stops on) the same averaged weights.
            start = time.perf_counter()
            loss_sum = self._average_parameters([label, epoch, self.steps, "end"], loss_sum)
            seconds += time.perf_counter() - start
        return loss_sum / max(samples, 1), samples, seconds

    def _synchronous_step(self, part: Batch, tag: list) -> float:
        # Compute = this task's forward/backward and the update; everything between them
        # (packing, the all-gather, the reduction) is synchronisation.
        start = time.perf_counter()
        grads, loss_sum = [], 0.0
        if len(part):
            feed = self.model.feed(part.users, part.items, part.labels)
            *grads, loss = self.session.run([*self.grad_nodes, self.model.loss], feed)
            loss_sum = float(loss) * len(part)
        computed = time.perf_counter()
        arrays, meta = pack_gradients(grads, self.sparse, len(part), loss_sum, tag)
        gathered = self.collective.gather(arrays, meta)
        reduced, _, total_loss = reduce_gradients(gathered, self.sparse, self.shapes)
        synced = time.perf_counter()
        self.applier.apply(self.session, reduced)
        gather_seconds = self.collective.last_seconds
        self.collective.sync_seconds += (synced - computed) - gather_seconds
        self.compute_seconds += (computed - start) + (time.perf_counter() - synced)
        return total_loss

    def _local_step(self, part: Batch, tag: list) -> float:
        loss_sum = 0.0
        if len(part):
            start = time.perf_counter()
            feed = self.model.feed(part.users, part.items, part.labels)
            _, loss = self.session.run([self.train_op, self.model.loss], feed)
            loss_sum = float(loss) * len(part)
            self.compute_seconds += time.perf_counter() - start
        if (self.steps + 1) % self.sync_every == 0:
            self._average_parameters(tag, 0.0)
        return loss_sum

    def _average_parameters(self, tag: list, loss_sum: float) -> float:
        """Replace every task's parameters by their mean; returns the summed `loss_sum`."""
        values = [self.session.get_value(v) for v in self.variables]
        gathered = self.collective.gather(values, {"tag": tag, "loss_sum": loss_sum})
        for var, value in zip(self.variables, average_arrays(gathered), strict=True):
            self.session.set_value(var, value)
        return sum(meta["loss_sum"] for _, meta in gathered)

    def parameters_digest(self) -> str:
        """SHA-256 over the trainable variables' bytes (replicas must agree on it)."""
        digest = hashlib.sha256()
        for var in self.variables:
            digest.update(np.ascontiguousarray(self.session.get_value(var)).tobytes())
        return digest.hexdigest()

    def finish(self, state: dict[str, Any]):
        gathered = self.collective.gather(
            [], {"tag": ["finish"], "digest": self.parameters_digest()}
        )
        digests = [meta["digest"] for _, meta in gathered]
        if len(set(digests)) != 1:
            raise DistributedError(f"replicas ended with different weights: {digests}")
        if self.collective.rank != 0:
            return None
        return super().finish(state)


def train_task(payload: str, _partition) -> Any:
    """The barrier task: train one replica; rank 0 yields the result as one JSON string."""
    from pyspark import BarrierTaskContext

    context = BarrierTaskContext.get()
    job = json.loads(payload)
    training = TrainingConfig.model_validate(job["training"])
    dataset = open_dataset(job["dataset_root"])
    transport = StarAllGather(context)
    collective = Collective(transport.all_gather, transport.rank, transport.size)
    try:
        with tempfile.TemporaryDirectory(prefix="peppercorn-replica-") as tmp:
            trainer = DistributedTrainer(
                dataset, training, job["model"], job["params"], Path(tmp), collective
            )
            result = trainer.fit(epochs=job["epochs"])
    finally:
        transport.close()
    if result is None:
        return
    names = [v.name for v in result.model.graph.variables if v.trainable]
    by_name = {v.name: v for v in result.model.graph.variables}
    weights = encode([result.session.get_value(by_name[n]) for n in names], {"names": names})
    yield json.dumps(
        {
            "weights": weights,
            "history": result.history,
            "best_epoch": result.best_epoch,
            "metrics": result.metrics,
            "sync_seconds": collective.sync_seconds,
            "compute_seconds": trainer.compute_seconds,
            "exchanges": collective.exchanges,
            "bytes_sent": collective.bytes_sent,
            "steps": trainer.steps,
        }
    )
