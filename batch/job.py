"""Spark batch scoring: every user against every item (or the configured candidates), top K.

`extract` builds the user index range (no data on the driver), `transform` scores it inside
the executors with `mapInPandas`, and `load` writes Parquet partitioned by `dt`, replacing
only that day's partition, so a re-run for the same day never duplicates rows.

Output (`batch.output`, default `<dataset root>/recommendations/dt=YYYY-MM-DD/`):
`user_id: string, rank: int (1 = best), item_id: string, score: float, model: string,
version: long`, raw ids as in the vocabularies.
"""

from __future__ import annotations

import datetime as dt_
import json
import time
from functools import partial

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from batch.scoring import score_batches
from batch.versions import BatchError, ModelVersion, resolve, ship
from peppercorn.config import Config, join_uri

__all__ = ["candidate_pool", "extract", "load", "output_uri", "run", "transform"]

SCORED_SCHEMA = "user_id string, rank int, item_id string, score float"


def output_uri(cfg: Config) -> str:
    """Root of the top-K table (partitioned by dt)."""
    return cfg.batch.output or join_uri(cfg.dataset_root(), "recommendations")


def candidate_pool(spark, uri: str, version: ModelVersion) -> np.ndarray:
    """Sorted unique item indices of a candidates file (one raw item id per line)."""
    # Bounded by the catalogue, not by the interaction data, so collecting it is fine.
    ids = [r.value.strip() for r in spark.read.text(uri).collect() if r.value.strip()]
    if not ids:
        raise BatchError(f"batch.candidates {uri}: no item ids in the file")
    vocab = json.loads((version.path / "assets" / "vocab" / "item_id.json").read_text())
    index = {str(t): i for i, t in enumerate(vocab["tokens"]) if i > 0}
    unknown = sorted({i for i in ids if i not in index})
    if unknown:
        raise BatchError(
            f"batch.candidates {uri}: {len(unknown)} item ids unknown to model "
            f"{version.name} v{version.version}, e.g. {unknown[:10]}"
        )
    return np.unique(np.asarray([index[i] for i in ids], dtype=np.int32))


def extract(spark, n_users: int, partitions: int) -> DataFrame:
    """One row per known user index (1..n_users-1), spread over `partitions`."""
    return spark.range(1, n_users, numPartitions=max(1, partitions)).select(
        F.col("id").cast("int").alias("user_idx")
    )


def transform(
    users: DataFrame,
    model_ref: str,
    model: str,
    version: int,
    k: int,
    day: str,
    pool: np.ndarray | None = None,
) -> DataFrame:
    """Top-`k` rows per user scored by the version at `model_ref` (a path or shipped archive)."""
    body = partial(score_batches, path=model_ref, pool=pool, k=k)
    return users.mapInPandas(body, SCORED_SCHEMA).select(
        "user_id",
        "rank",
        "item_id",
        "score",
        F.lit(model).alias("model"),
        F.lit(version).cast("long").alias("version"),
        F.lit(day).alias("dt"),
    )


def load(scored: DataFrame, uri: str) -> None:
    """Write, replacing only the partitions (days) present in `scored`."""
    (
        scored.write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy("dt")
        .parquet(uri)
    )


def _one_blas_thread_per_worker(spark) -> None:
    # Spark already runs one Python worker per core; a multi-threaded BLAS in each of them
    # oversubscribes the cores (measured: 2.6x slower scoring with 2 threads per worker on
    # 2 cores).  `SparkContext.environment` reaches the Python workers started for the UDFs
    # created after this; values set in the config (spark.executorEnv.*) win.
    env = spark.sparkContext.environment
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")


def check_day(day: str) -> str:
    """`day` if it is an ISO date (YYYY-MM-DD); BatchError otherwise."""
    try:
        return dt_.date.fromisoformat(day).isoformat()
    except ValueError:
        raise BatchError(f"--dt {day!r}: expected a date like 2026-10-31") from None


def run(cfg: Config, spark, day: str, version: int | None = None) -> dict:
    """Score and write one day's top-K; returns a summary (rows, users, model, version, ...)."""
    start = time.perf_counter()
    day = check_day(day)
    name = cfg.batch.model or cfg.model.name
    chosen = resolve(cfg.paths.model_repository, name, version)
    n_users, _ = chosen.sizes()
    pool = candidate_pool(spark, cfg.batch.candidates, chosen) if cfg.batch.candidates else None
    ref = ship(spark, chosen) if cfg.batch.ship_model else str(chosen.path)
    _one_blas_thread_per_worker(spark)
    partitions = spark.sparkContext.defaultParallelism
    scored = transform(
        extract(spark, n_users, partitions), ref, name, chosen.version, cfg.batch.k, day, pool
    )
    out = output_uri(cfg)
    load(scored, out)
    written = spark.read.parquet(join_uri(out, f"dt={day}"))
    rows = written.count()
    return {
        "model": name,
        "version": chosen.version,
        "users": n_users - 1,
        "rows": rows,
        "k": cfg.batch.k,
        "candidates": None if pool is None else int(pool.size),
        "output": join_uri(out, f"dt={day}"),
        "seconds": round(time.perf_counter() - start, 3),
    }
