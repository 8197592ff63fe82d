"""Executor side of batch scoring: a per-process model cache and exact top-K per user.

Everything here runs inside Spark's Python workers.  A version directory is loaded at most
once per worker process (`_CACHE`, keyed by its path): Spark reuses Python workers across
tasks (`spark.python.worker.reuse`, on by default), so each executor process pays the load
once, not once per partition, batch or row.

Ranking matches the online server (`serving.model.ServedVersion.recommend`): the pool is the
sorted unique candidate indices (all items 1..n-1 by default), the user's seen items are left
out, and items are ordered by score, ties broken by the lower item index.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "OUTPUT_COLUMNS",
    "ScoringModel",
    "load_counts",
    "model_for",
    "score_batches",
    "top_k",
]

OUTPUT_COLUMNS = ("user_id", "rank", "item_id", "score")
_PAIRS_PER_CALL = 131_072  # bounds one predict call's memory (users x pool pairs)
_CACHE: dict[str, ScoringModel] = {}
_LOADS: dict[str, int] = {}
_EMPTY_TYPES = {"user_id": object, "rank": np.int32, "item_id": object, "score": np.float32}


@dataclass
class ScoringModel:
    """A loaded version: the saved graph, raw ids of every index, and the seen-items CSR."""

    saved: object
    user_tokens: np.ndarray
    item_tokens: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray

    @classmethod
    def load(cls, path: str) -> ScoringModel:
        """Read a version directory written by `training.export` (checksums verified)."""
        from engine.saved import load

        saved = load(path)
        assets = saved.assets
        users = json.loads(assets["vocab/user_id.json"])["tokens"]
        items = json.loads(assets["vocab/item_id.json"])["tokens"]
        with np.load(io.BytesIO(assets["seen.npz"]), allow_pickle=False) as npz:
            indptr, indices = npz["indptr"].astype(np.int64), npz["indices"].astype(np.int32)
        return cls(
            saved,
            np.asarray([str(t) for t in users], dtype=object),
            np.asarray([str(t) for t in items], dtype=object),
            indptr,
            indices,
        )

    def seen(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with (empty for users beyond the CSR)."""
        if user_idx + 1 >= self.seen_indptr.shape[0]:
            return np.empty(0, dtype=np.int32)
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    def scores(self, users: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """Score matrix [len(users), len(pool)] of the serving signature, float32."""
        u = np.repeat(users.astype(np.int32), pool.size)
        i = np.tile(pool.astype(np.int32), users.size)
        out = self.saved.predict("serving_default", {"user_idx": u, "item_idx": i})
        return np.asarray(out["score"], dtype=np.float32).reshape(users.size, pool.size)


def model_for(path: str) -> ScoringModel:
    """The cached model of `path`, loading it on this process's first request."""
    model = _CACHE.get(path)
    if model is None:
        model = ScoringModel.load(path)
        _CACHE[path] = model
        _LOADS[path] = _LOADS.get(path, 0) + 1
    return model


def load_counts() -> dict[str, int]:
    """How many times this process loaded each path (for tests of the cache), with the pid."""
    return {"pid": os.getpid(), **_LOADS}


def top_k(scores: np.ndarray, excluded: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the positions of the k best non-excluded scores (ties: lower position first).

    Returns (positions [rows, k'], valid [rows, k']) where k' = min(k, columns) and `valid` is
    False where a row had fewer than k' eligible columns.
    """
    masked = np.where(excluded, -np.inf, scores)
    kk = min(k, scores.shape[1])
    # A stable sort of the negated scores keeps equal scores in column (= item index) order.
    order = np.argsort(-masked, axis=1, kind="stable")[:, :kk]
    valid = ~np.take_along_axis(excluded, order, axis=1)
    return order, valid


def _seen_mask(model: ScoringModel, users: np.ndarray, pool: np.ndarray) -> np.ndarray:
    mask = np.zeros((users.size, pool.size), dtype=bool)
    for row, user in enumerate(users.tolist()):
        seen = model.seen(user)
        if seen.size:
            pos = np.searchsorted(pool, seen)
            hit = pos < pool.size
            hit[hit] = pool[pos[hit]] == seen[hit]
            mask[row, pos[hit]] = True
    return mask


def score_users(model: ScoringModel, users: np.ndarray, pool: np.ndarray, k: int) -> pd.DataFrame:
    """Top-k rows (user_id, rank, item_id, score) for `users` over the sorted `pool`."""
    frames = []
    step = max(1, _PAIRS_PER_CALL // max(pool.size, 1))
    for start in range(0, users.size, step):
        chunk = users[start : start + step]
        scores = model.scores(chunk, pool)
        order, valid = top_k(scores, _seen_mask(model, chunk, pool), k)
        rows, cols = np.nonzero(valid)
        picked = order[rows, cols]
        frames.append(
            pd.DataFrame(
                {
                    "user_id": model.user_tokens[chunk[rows]],
                    "rank": (cols + 1).astype(np.int32),
                    "item_id": model.item_tokens[pool[picked]],
                    "score": scores[rows, picked].astype(np.float32),
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY_TYPES.items()})
    return pd.concat(frames, ignore_index=True)


def score_batches(
    batches: Iterator[pd.DataFrame], path: str, pool: np.ndarray | None, k: int
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: `user_idx` batches in, top-k rows out; the model comes from the cache.

    `path` is a local directory, or `spark-archive:<name>` for a version shipped with
    `SparkContext.addArchive` (resolved on the executor with `SparkFiles.get`).
    """
    if path.startswith("spark-archive:"):
        from pyspark import SparkFiles

        path = SparkFiles.get(path[len("spark-archive:") :])
        # An archive unpacks into a folder named after it; the version is the folder inside.
        inner = [p for p in Path(path).iterdir() if p.is_dir()]
        if len(inner) == 1 and not (Path(path) / "manifest.json").exists():
            path = str(inner[0])
    model = model_for(path)
    if pool is None:
        pool = np.arange(1, model.item_tokens.size, dtype=np.int32)
    for batch in batches:
        users = batch["user_idx"].to_numpy(dtype=np.int32)
        yield score_users(model, users[users > 0], pool, k)
