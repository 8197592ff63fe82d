"""Gradient and parameter exchange between the tasks of a barrier stage.

Every exchange is one `allGather` of an encoded message; every task then reduces the gathered
list in rank order, so the result is bit-for-bit the same on every task. Each message also
names what it is (kind, epoch, step): tasks that have drifted out of step fail with a message
instead of pairing a gradient with someone else's parameters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engine import IndexedSlices
from training.distributed.codec import pack, unpack

__all__ = [
    "Collective",
    "DistributedError",
    "average_arrays",
    "pack_gradients",
    "reduce_gradients",
]


class DistributedError(RuntimeError):
    """Distributed training cannot go on; the message says why."""


class Collective:
    """All-gather of arrays over `size` tasks; keeps the seconds and bytes spent on it."""

    def __init__(self, all_gather: Callable[[bytes], list[bytes]], rank: int, size: int) -> None:
        self._all_gather, self.rank, self.size = all_gather, rank, size
        self.sync_seconds = 0.0
        self.last_seconds = 0.0
        self.bytes_sent = 0
        self.exchanges = 0

    def gather(
        self, arrays: list[np.ndarray], meta: dict[str, Any]
    ) -> list[tuple[list[np.ndarray], dict[str, Any]]]:
        """Every task's (arrays, meta) in rank order; raises when the tasks are out of step."""
        start = time.perf_counter()
        message = pack(arrays, meta)
        replies = [unpack(m) for m in self._all_gather(message)]
        self.last_seconds = time.perf_counter() - start
        self.sync_seconds += self.last_seconds
        self.bytes_sent += len(message)
        self.exchanges += 1
        if len(replies) != self.size:
            raise DistributedError(f"all-gather returned {len(replies)} messages for {self.size}")
        tag = meta.get("tag")
        for rank, (_, other) in enumerate(replies):
            if other.get("tag") != tag:
                raise DistributedError(
                    f"tasks out of step: task {self.rank} is at {tag}, task {rank} at "
                    f"{other.get('tag')}"
                )
        return replies


def pack_gradients(
    grads: list, sparse: list[bool], n: int, loss_sum: float, tag: list
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """One task's gradients on its `n` examples (mean over them) as arrays and meta.

    A row-sparse gradient travels as its row indices and rows. A task with no examples in
    this global batch sends no arrays and weighs nothing in the reduction.
    """
    arrays: list[np.ndarray] = []
    if n:
        for g, is_sparse in zip(grads, sparse, strict=True):
            if is_sparse:
                if type(g) is not IndexedSlices:
                    raise DistributedError("expected a row-sparse gradient for an embedding table")
                arrays += [np.asarray(g.indices, np.int64), np.asarray(g.values)]
            else:
                arrays.append(np.asarray(g.to_dense() if type(g) is IndexedSlices else g))
    return arrays, {"tag": tag, "n": int(n), "loss_sum": float(loss_sum)}


def reduce_gradients(
    gathered: list[tuple[list[np.ndarray], dict[str, Any]]],
    sparse: list[bool],
    shapes: list[tuple[int, ...]],
) -> tuple[list, int, float]:
    """(gradients of the global batch, its size, its summed loss) from every task's message.

    Each task sent the mean gradient over its n_t examples; weighting it by n_t / N makes the
    sum the mean over all N examples, i.e. the gradient one process computes on the whole
    batch. Row-sparse gradients stay sparse: indices concatenated, rows weighted.
    """
    total = sum(meta["n"] for _, meta in gathered)
    loss_sum = sum(meta["loss_sum"] for _, meta in gathered)
    if total == 0:
        raise DistributedError("a global batch with no examples on any task")
    out: list = [None] * len(sparse)
    parts: list[list] = [[] for _ in sparse]
    for arrays, meta in gathered:
        if meta["n"] == 0:
            continue
        weight = meta["n"] / total
        it = iter(arrays)
        for k, is_sparse in enumerate(sparse):
            if is_sparse:
                indices, rows = next(it), next(it)
                parts[k].append((indices, rows * np.asarray(weight, rows.dtype)))
            else:
                g = next(it)
                g = g * np.asarray(weight, g.dtype)
                out[k] = g if out[k] is None else out[k] + g
    for k, is_sparse in enumerate(sparse):
        if is_sparse:
            indices = np.concatenate([i for i, _ in parts[k]])
            rows = np.concatenate([r for _, r in parts[k]])
            out[k] = IndexedSlices(indices, rows, shapes[k])
    return out, total, loss_sum


def average_arrays(gathered: list[tuple[list[np.ndarray], dict[str, Any]]]) -> list[np.ndarray]:
    """The element-wise mean over tasks of each array (summed in rank order)."""
    count = len(gathered)
    sums = [np.array(a, copy=True) for a in gathered[0][0]]
    for arrays, _ in gathered[1:]:
        for acc, a in zip(sums, arrays, strict=True):
            acc += a
    return [s / np.asarray(count, s.dtype) for s in sums]
