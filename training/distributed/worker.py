"""What each task of the barrier stage runs: the trainer on its shard, steps synchronised.

Task r holds the users with user_idx % workers == r (`training.distributed.shard`), shuffles
and samples negatives with its own seeded stream, and trains on its share of every global
batch; global batch t is the tasks' batches t concatenated in rank order (a task out of rows
sends an empty share). With `sync_every` K = 1 the shares' gradients are all-reduced before
every step and all tasks apply the same update: synchronous SGD, the single-process run over
those global batches. With K > 1 each task steps on its own shares and the parameters are
averaged every K steps and at the end of every epoch (local SGD); optimizer slots stay per task.
Validation and test are scored by each task for its users and gathered, so every task sees the
metrics of the whole evaluation set and early-stops alike.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine import compute_gradients
from peppercorn.config import TrainingConfig
from training.data import Batch, open_dataset
from training.distributed.apply import GradientApplier, is_row_sparse
from training.distributed.codec import encode
from training.distributed.collective import (
    Collective,
    DistributedError,
    average_arrays,
    pack_gradients,
    reduce_gradients,
)
from training.distributed.shard import (
    ArrayPositives,
    ShardDataset,
    rank_rng,
    shard_batches,
    slice_bounds,
)
from training.distributed.transport import StarAllGather
from training.metrics import evaluate_scores
from training.trainer import Trainer, eval_scores

__all__ = ["DistributedTrainer", "slice_bounds", "train_task"]


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
        self.sparse = [is_row_sparse(v, self.model.loss) for v in self.variables]
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.applier = GradientApplier(self.optimizer, self.variables, self.sparse,
                                       self.model.graph)  # fmt: skip
        self.steps = 0
        self.compute_seconds = 0.0

    def run_epoch(self, epoch, rng, positives=None, exclude=None, label="epoch"):
        positives, exclude = positives or self.train, exclude or self.exclude
        rank, size = self.collective.rank, self.collective.size
        start = time.perf_counter()
        own = rank_rng(self.cfg.seed, rank, epoch, label)
        parts = shard_batches(positives, exclude, self.cfg.negatives, self.cfg.batch_size,
                              rank, size, own)  # fmt: skip
        counted = self.collective.gather(
            [], {"tag": [label, epoch, "plan"], "steps": len(parts), "rows": sum(map(len, parts))}
        )
        steps = max(meta["steps"] for _, meta in counted)
        samples = sum(meta["rows"] for _, meta in counted)
        empty = Batch(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32))
        loss_sum = 0.0
        for t in range(steps):
            part = parts[t] if t < len(parts) else empty
            tag = [label, epoch, self.steps]
            if self.sync_every == 1:
                loss_sum += self._synchronous_step(part, tag)
            else:
                loss_sum += self._local_step(part, tag)
            self.steps += 1
        if self.sync_every > 1:
            # Every task evaluates (and early-stops on) the same averaged weights.
            loss_sum = self._average_parameters([label, epoch, self.steps, "end"], loss_sum)
        return loss_sum / max(samples, 1), samples, time.perf_counter() - start

    def evaluate(self, data) -> dict[str, float]:
        """Metrics of the whole evaluation set: each task scores its users' rows."""
        pos, neg = eval_scores(self.session, self.model, data)
        gathered = self.collective.gather([pos, neg], {"tag": ["evaluate", self.steps]})
        pos = np.concatenate([arrays[0] for arrays, _ in gathered])
        neg = np.concatenate([arrays[1] for arrays, _ in gathered])
        return evaluate_scores(pos, neg)

    def _synchronous_step(self, part: Batch, tag: list) -> float:
        # Compute = this task's forward/backward and the update; everything between them
        # (packing, the all-gather, the reduction) is synchronisation.
        start = time.perf_counter()
        grads, loss_sum = [], 0.0
        if len(part):
            feed = self.model.feed_batch(part)
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
            feed = self.model.feed_batch(part)
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
        result = super().finish(state)  # every task: the test metrics are gathered
        return result if self.collective.rank == 0 else None


def _shard_rows(partition) -> ArrayPositives:
    rows = [row for _, row in partition]
    if not rows:
        return ArrayPositives(np.zeros(0, np.int32), np.zeros(0, np.int32))
    table = np.asarray(rows, dtype=np.int64)
    has_ts = table.shape[1] > 2
    return ArrayPositives(table[:, 0], table[:, 1], table[:, 2] if has_ts else None)


def train_task(payload: str, partition) -> Any:
    """The barrier task: train one replica on its shard; rank 0 yields the result as JSON."""
    from pyspark import BarrierTaskContext

    context = BarrierTaskContext.get()
    job = json.loads(payload)
    training = TrainingConfig.model_validate(job["training"])
    positives = _shard_rows(partition)
    transport = StarAllGather(context)
    collective = Collective(transport.all_gather, transport.rank, transport.size)
    dataset = ShardDataset(open_dataset(job["dataset_root"]), positives, transport.rank,
                           transport.size)  # fmt: skip
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
