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
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from batch.scoring import score_batches
from peppercorn.config import Config, join_uri
from peppercorn.fs import is_local
from peppercorn.loaded_version import LoadedVersion
from peppercorn.model_repository import ExportedVersion, ModelRepository

__all__ = [
    "BatchError",
    "candidate_pool",
    "extract",
    "load",
    "output_uri",
    "run",
    "ship",
    "transform",
]


class BatchError(RuntimeError):
    """A batch run that cannot go on; the message says what to fix."""


SCORED_SCHEMA = "user_id string, rank int, item_id string, score float"


def output_uri(cfg: Config) -> str:
    """Root of the top-K table (partitioned by dt)."""
    return cfg.batch.output or join_uri(cfg.dataset_root(), "recommendations")


def candidate_pool(spark, uri: str, loaded: LoadedVersion) -> np.ndarray:
    """Sorted unique item indices of a candidates file (one raw item id per line)."""
    # Bounded by the catalogue, not by the interaction data, so collecting it is fine.
    ids = [r.value.strip() for r in spark.read.text(uri).collect() if r.value.strip()]
    if not ids:
        raise BatchError(f"batch.candidates {uri}: no item ids in the file")
    index = [loaded.items.lookup(i) for i in ids]
    unknown = sorted({i for i, idx in zip(ids, index, strict=True) if idx == 0})
    if unknown:
        raise BatchError(
            f"batch.candidates {uri}: {len(unknown)} item ids unknown to model "
            f"{loaded.name} v{loaded.version}, e.g. {unknown[:10]}"
        )
    return np.unique(np.asarray(index, dtype=np.int32))


def ship(spark, version: ExportedVersion) -> str:
    """Send the version to every executor as a Spark archive (for clusters whose executors
    cannot reach the repository); returns the reference `batch.scoring` resolves there."""
    folder = Path(tempfile.mkdtemp(prefix="peppercorn-ship-"))
    version.download(folder / "repository")
    name = f"{version.name}-v{version.version}"
    archive = shutil.make_archive(str(folder / name), "zip", root_dir=folder / "repository")
    spark.sparkContext.addArchive(archive)
    return f"spark-archive:{Path(archive).name}"


def extract(spark, n_users: int, partitions: int) -> DataFrame:
    """One row per known user index (1..n_users-1), spread over `partitions`."""
    return spark.range(1, n_users, numPartitions=max(1, partitions)).select(
        F.col("id").cast("int").alias("user_idx")
    )


def transform(
    users: DataFrame,
    repository: str,
    model: str,
    version: int,
    k: int,
    day: str,
    pool: np.ndarray | None = None,
) -> DataFrame:
    """Top-`k` rows per user scored by `model` v`version` of `repository` (a repository URI,
    or the reference `ship` returned)."""
    body = partial(
        score_batches, repository=repository, name=model, version=version, pool=pool, k=k
    )
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


def _open(cfg: Config, name: str, version: int | None) -> tuple[ExportedVersion, LoadedVersion]:
    from peppercorn.loaded_version import VersionError
    from peppercorn.model_repository import RepositoryError

    try:
        chosen = ModelRepository(cfg.paths.model_repository).version(name, version)
        # Opened here first so a version that cannot be served fails once, on the driver,
        # with its reason, instead of in every executor.
        return chosen, chosen.open()
    except RepositoryError as exc:
        raise BatchError(str(exc)) from None
    except VersionError as exc:
        raise BatchError(f"model {name} v{chosen.version} cannot be loaded: {exc}") from None


def run(cfg: Config, spark, day: str, version: int | None = None) -> dict:
    """Score and write one day's top-K; returns a summary (rows, users, model, version, ...)."""
    start = time.perf_counter()
    day = check_day(day)
    name = cfg.batch.model or cfg.model.name
    chosen, loaded = _open(cfg, name, version)
    n_users = len(loaded.users)
    pool = candidate_pool(spark, cfg.batch.candidates, loaded) if cfg.batch.candidates else None
    if cfg.batch.ship_model:
        repository = ship(spark, chosen)
    elif is_local(cfg.paths.model_repository):
        # Executors do not share the driver's working directory: the resolved absolute path.
        repository = chosen.repository.path
    else:
        repository = cfg.paths.model_repository
    _one_blas_thread_per_worker(spark)
    partitions = spark.sparkContext.defaultParallelism
    scored = transform(
        extract(spark, n_users, partitions), repository, name, chosen.version, cfg.batch.k, day,
        pool,
    )  # fmt: skip
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
