"""Executor side of batch scoring: a per-process model cache and exact top-K per user.

Everything here runs inside Spark's Python workers. A version is opened at most once per
worker process (`_CACHE`, keyed by repository, model and version): Spark reuses Python workers
across tasks (`spark.python.worker.reuse`, on by default), so each executor process pays the
load once, not once per partition, batch or row. The version is read through the model
repository (`ExportedVersion.open()`), from wherever the repository lives. Without retrieval
the ranking is `LoadedVersion.top_k`, the same as the server's one-stage `/recommend` (seen
items left out, score descending, ties to the lower item index); with it, each batch of users
goes through `peppercorn.two_stage.chain_top_k`, the code `/recommend` runs for one user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from peppercorn.loaded_version import LoadedVersion
from peppercorn.model_repository import ModelRepository
from peppercorn.two_stage import chain_top_k, index_map, item_tokens

__all__ = [
    "OUTPUT_COLUMNS",
    "Chain",
    "ScoringModel",
    "chain_batches",
    "chain_users",
    "load_counts",
    "model_for",
    "score_batches",
    "search_in_batches",
]

OUTPUT_COLUMNS = ("user_id", "rank", "item_id", "score")
_PAIRS_PER_CHUNK = 131_072  # bounds one chunk's memory (users x pool pairs)
_EMPTY_TYPES = {"user_id": object, "rank": np.int32, "item_id": object, "score": np.float32}


@dataclass
class ScoringModel:
    """A loaded version with its raw ids as arrays (so picks map to ids in one take)."""

    loaded: LoadedVersion
    user_tokens: np.ndarray
    item_tokens: np.ndarray


@dataclass(frozen=True)
class Chain:
    """A run's retrieval stage: the retrieval version and `serving.recommend`'s settings."""

    repository: str  # a repository URI, or the reference `job.ship` returned
    model: str
    version: int
    candidates: int
    blocklist: tuple[str, ...] = ()


_CACHE: dict[tuple[str, str, int], ScoringModel] = {}
_LOADS: dict[tuple[str, str, int], int] = {}


def _resolve(repository: str) -> str:
    """`spark-archive:<name>` (a version shipped with `SparkContext.addArchive`) -> the local
    folder it was unpacked into on this executor; anything else is a repository URI."""
    if not repository.startswith("spark-archive:"):
        return repository
    from pyspark import SparkFiles

    return str(Path(SparkFiles.get(repository[len("spark-archive:") :])))


def model_for(repository: str, name: str, version: int) -> ScoringModel:
    """The cached model, opened on this process's first request for it."""
    key = (repository, name, version)
    model = _CACHE.get(key)
    if model is None:
        loaded = ModelRepository(_resolve(repository)).version(name, version).open()
        model = ScoringModel(
            loaded,
            np.asarray(loaded.users.tokens, dtype=object),
            np.asarray(loaded.items.tokens, dtype=object),
        )
        _CACHE[key] = model
        _LOADS[key] = _LOADS.get(key, 0) + 1
    return model


def load_counts() -> dict:
    """How many times this process opened each (repository, model, version), with its pid."""
    return {"pid": os.getpid(), **{"/".join(map(str, k)): n for k, n in _LOADS.items()}}


def score_users(model: ScoringModel, users: np.ndarray, pool: np.ndarray, k: int) -> pd.DataFrame:
    """Top-k rows (user_id, rank, item_id, score) for `users` over the sorted `pool`."""
    frames = []
    step = max(1, _PAIRS_PER_CHUNK // max(pool.size, 1))
    for start in range(0, users.size, step):
        chunk = users[start : start + step]
        rows, ranks, items, scores = model.loaded.top_k(chunk, pool, k)
        users_of = model.user_tokens[chunk[rows]]
        frames.append(_frame(users_of, ranks, model.item_tokens[items], scores))
    if not frames:
        return _frame([], [], [], [])
    return pd.concat(frames, ignore_index=True)


def _frame(user_id, rank, item_id, score) -> pd.DataFrame:
    if len(user_id) == 0:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _EMPTY_TYPES.items()})
    return pd.DataFrame(
        {
            "user_id": user_id,
            "rank": np.asarray(rank, np.int32),
            "item_id": item_id,
            "score": np.asarray(score, np.float32),
        }
    )


def chain_users(
    retrieval: ScoringModel, ranker: ScoringModel, users: np.ndarray, chain: Chain, k: int
) -> pd.DataFrame:
    """Top-k rows (user_id, rank, item_id, score) for the ranker's `users` through the chain."""
    users_r = index_map(ranker.loaded, retrieval.loaded, "user_id")[users]
    top = chain_top_k(retrieval.loaded, ranker.loaded, users_r, users, k, chain.candidates,
                      True, chain.blocklist)  # fmt: skip
    items = item_tokens(retrieval.loaded, ranker.loaded, top, ranker.item_tokens)
    return _frame(ranker.user_tokens[users[top.rows]], top.ranks, items, top.scores)


def search_in_batches() -> None:
    """Set this process's faiss up for searching thousands of queries at once, on one core."""
    import faiss

    from peppercorn.ann import set_search_threads

    # Spark runs one Python worker per core: a search spread over every core in each worker
    # would oversubscribe them, as a multi-threaded BLAS does.
    set_search_threads(1)
    # faiss 1.15 answers an exact search of fewer than 128,000 queries with one dot product at
    # a time; a chunk's queries as one matrix product are 3.2x faster at 100k items, d = 32
    # (1.87 -> 0.58 ms a query, 220 results). Only the last bits of the scores differ.
    faiss.cvar.distance_compute_blas_threshold = 20


def chain_batches(
    batches: Iterator[pd.DataFrame], repository: str, name: str, version: int, chain: Chain, k: int
) -> Iterator[pd.DataFrame]:
    """mapInPandas body of a two-stage run: `user_idx` batches (the ranker's) in, top-k out."""
    search_in_batches()
    ranker = model_for(repository, name, version)
    retrieval = model_for(chain.repository, chain.model, chain.version)
    for batch in batches:
        users = batch["user_idx"].to_numpy(dtype=np.int32)
        yield chain_users(retrieval, ranker, users[users > 0], chain, k)


def score_batches(
    batches: Iterator[pd.DataFrame],
    repository: str,
    name: str,
    version: int,
    pool: np.ndarray | None,
    k: int,
) -> Iterator[pd.DataFrame]:
    """mapInPandas body: `user_idx` batches in, top-k rows out; the model comes from the cache."""
    model = model_for(repository, name, version)
    if pool is None:
        pool = model.loaded.all_items()
    for batch in batches:
        users = batch["user_idx"].to_numpy(dtype=np.int32)
        yield score_users(model, users[users > 0], pool, k)
