"""Spark batch scoring: top K for every user, written as one day's partition.

With a retrieval model (`serving.recommend.retrieval`, as `/recommend` is configured) each
user goes through the two-stage chain (`peppercorn.two_stage`): `serving.recommend.candidates`
items retrieved with its ANN index, seen and `serving.recommend.blocklist` items left out, the
rest ranked by the ranker, so a platform-size run scores users x candidates pairs, not users x
catalogue; the rows are what `/recommend` answers with the same versions. Without one (or
while the named model has no version yet, as the server then does) the ranker scores every
item (or the `batch.candidates` pool). A candidate pool with a retrieval version to use is
refused, naming both settings: online, a client's candidates bypass retrieval, so neither
"rank the pool" nor "retrieve within the pool" would be what the server does.

The ranker is `batch.model`, else `serving.recommend.ranking`, else `model.name`.
`extract` builds the user index range (no data on the driver), `transform` scores it inside
the executors with `mapInPandas`, and `load` writes Parquet partitioned by `dt`, replacing
only that day's partition, so a re-run for the same day never duplicates rows.

Output (`batch.output`, default `<dataset root>/recommendations/dt=YYYY-MM-DD/`):
`user_id: string, rank: int (1 = best), item_id: string, score: float, model: string,
version: long` (the ranker's), raw ids as in the vocabularies; the run's summary names the
retrieval version.
"""

from __future__ import annotations

import datetime as dt_
import hashlib
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from batch.scoring import Chain, chain_batches, score_batches
from peppercorn.config import Config, join_uri
from peppercorn.fs import is_local
from peppercorn.loaded_version import LoadedVersion
from peppercorn.model_repository import ExportedVersion, ModelRepository

__all__ = [
    "BatchError",
    "Chain",
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
    # Named after the files too: a session that ships another repository's version of the same
    # name and number (or this one rewritten) must not find the first archive by its name,
    # in SparkFiles or in the workers' model cache, which is keyed by this reference.
    digest = hashlib.blake2b(repr(version.fingerprint()).encode(), digest_size=6).hexdigest()
    name = f"{version.name}-v{version.version}-{digest}"
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
    chain: Chain | None = None,
) -> DataFrame:
    """Top-`k` rows per user scored by `model` v`version` of `repository` (a repository URI,
    or the reference `ship` returned), over what `chain` retrieves when there is one."""
    if chain is None:
        body = partial(
            score_batches, repository=repository, name=model, version=version, pool=pool, k=k
        )
    else:
        body = partial(
            chain_batches, repository=repository, name=model, version=version, chain=chain, k=k
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


def _retrieval(cfg: Config, version: int | None) -> ExportedVersion | None:
    """The retrieval version of the chain (`serving.recommend.retrieval`), or None when none is
    configured, or the model has no version yet and none was asked for (the server then
    answers with the ranker alone too)."""
    name = cfg.serving.recommend.retrieval
    if name is None:
        return None
    if version is None and not ModelRepository(cfg.paths.model_repository).versions(name):
        return None
    if cfg.batch.candidates:
        raise BatchError(
            f"batch.candidates ({cfg.batch.candidates}) and serving.recommend.retrieval "
            f"({name}) are both set: a candidate pool bypasses retrieval online, so the run "
            "would not be the chain; unset one of them"
        )
    chosen, loaded = _open(cfg, name, version)
    if loaded.retrieval is None:
        raise BatchError(
            f"serving.recommend.retrieval: model {name} v{chosen.version} has no ANN index "
            "(it must name a retrieval model such as two_tower)"
        )
    return chosen


def _reference(cfg: Config, spark, chosen: ExportedVersion) -> str:
    """Where the executors read `chosen` from."""
    if cfg.batch.ship_model:
        return ship(spark, chosen)
    if is_local(cfg.paths.model_repository):
        # Executors do not share the driver's working directory: the resolved absolute path.
        return chosen.repository.path
    return cfg.paths.model_repository


def _described(chain: Chain) -> dict:
    return {"model": chain.model, "version": chain.version, "candidates": chain.candidates,
            "blocklist": len(chain.blocklist)}  # fmt: skip


def run(
    cfg: Config,
    spark,
    day: str,
    version: int | None = None,
    retrieval_version: int | None = None,
) -> dict:
    """Score and write one day's top-K with the ranker's `version` (default: the latest) and,
    when a retrieval model is configured, its `retrieval_version` (default: the latest);
    returns a summary (rows, users, model, version, retrieval, ...)."""
    start = time.perf_counter()
    day = check_day(day)
    chain_cfg = cfg.serving.recommend
    name = cfg.batch.model or chain_cfg.ranking or cfg.model.name
    chosen, loaded = _open(cfg, name, version)
    found = _retrieval(cfg, retrieval_version)
    n_users = len(loaded.users)
    pool = candidate_pool(spark, cfg.batch.candidates, loaded) if cfg.batch.candidates else None
    chain = None
    if found is not None:
        chain = Chain(_reference(cfg, spark, found), found.name, found.version,
                      chain_cfg.candidates, tuple(chain_cfg.blocklist))  # fmt: skip
    _one_blas_thread_per_worker(spark)
    partitions = spark.sparkContext.defaultParallelism
    scored = transform(
        extract(spark, n_users, partitions), _reference(cfg, spark, chosen), name,
        chosen.version, cfg.batch.k, day, pool, chain,
    )  # fmt: skip
    out = output_uri(cfg)
    load(scored, out)
    written = spark.read.parquet(join_uri(out, f"dt={day}"))
    rows = written.count()
    return {
        "model": name,
        "version": chosen.version,
        "retrieval": None if chain is None else _described(chain),
        "users": n_users - 1,
        "rows": rows,
        "k": cfg.batch.k,
        "candidates": None if pool is None else int(pool.size),
        "output": join_uri(out, f"dt={day}"),
        "seconds": round(time.perf_counter() - start, 3),
    }
