"""The driver's side: start the barrier stage, take rank 0's weights, evaluate and hand back.

`python -m training` calls `train_distributed` when `training.distributed.workers` > 1. The
Spark master comes from the `spark` config section (local[N], spark://, yarn, k8s://), so the
same command trains in one process, on local cores or on a cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import zipfile
from functools import partial
from pathlib import Path
from typing import Any

from peppercorn.config import Config
from training.data import open_dataset
from training.distributed.codec import decode
from training.distributed.collective import DistributedError
from training.distributed.worker import train_task
from training.trainer import Trainer, TrainResult, popularity_metrics

__all__ = ["absolute_root", "required_local_slots", "train_distributed"]

_PACKAGES = ("peppercorn", "engine", "training")
_ROOT = Path(__file__).resolve().parents[2]
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.*)$")
_WRAPPERS = {"Py4JJavaError", "SparkException", "PythonException", "IllegalStateException"}


def absolute_root(uri: str) -> str:
    """A relative local path made absolute: executors do not share the driver's working dir."""
    if "://" in uri:
        return uri
    return str(Path(uri).resolve())


def required_local_slots(master: str) -> int | None:
    """Task slots of a `local[...]` master (None for a cluster manager, checked by Spark)."""
    if master == "local":
        return 1
    match = re.fullmatch(r"local\[(\*|\d+)(?:,\s*\d+)?\]", master)
    if not match:
        return None
    return (os.cpu_count() or 1) if match.group(1) == "*" else int(match.group(1))


def _session(cfg: Config):
    from pyspark.sql import SparkSession

    from peppercorn.spark import get_spark

    conf = dict(cfg.spark.conf)
    # One BLAS thread per task: N tasks share the machine's cores (see peppercorn.blas).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        conf.setdefault(f"spark.executorEnv.{var}", "1")
    owned = SparkSession.getActiveSession() is None
    spark = get_spark(cfg.spark.model_copy(update={"conf": conf}), f"{cfg.spark.app_name}-train")
    return spark, owned


def _ship_code(sc) -> None:
    """Send this checkout's `peppercorn`, `engine` and `training` packages to executors (zip)."""
    files = sorted(
        p for pkg in _PACKAGES for p in (_ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes())
    # The same code gets the same path: Spark refuses one file name under two paths.
    target = Path(tempfile.gettempdir()) / "peppercorn-code" / digest.hexdigest()[:16]
    archive = target / "peppercorn_code.zip"
    if not archive.is_file():
        target.mkdir(parents=True, exist_ok=True)
        partial_zip = target / "peppercorn_code.zip.tmp"
        with zipfile.ZipFile(partial_zip, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, str(path.relative_to(_ROOT)))
        partial_zip.replace(archive)
    sc.addPyFile(str(archive))


def _shards(spark, train_path: str, workers: int):
    """The training positives as `workers` partitions, partition r holding the users with
    user_idx % workers == r: Spark's readers and shuffle deliver each task its shard, so no
    task reads the whole table."""
    from pyspark.sql import functions as F

    frame = spark.read.parquet(train_path)
    columns = [F.col("user_idx").cast("long"), F.col("item_idx").cast("long")]
    if "ts" in frame.columns:
        columns.append(F.unix_micros(F.col("ts")))  # the order seqfism's history needs
    return (
        frame.select(*columns)
        .rdd.map(lambda row: (row[0] % workers, tuple(row)))
        .partitionBy(workers, lambda shard: shard)
    )


def task_failure(exc: Exception) -> str:
    """The Python error line a failed task raised, out of Spark's wrapped trace."""
    found = None
    for line in str(exc).splitlines():
        match = _ERROR_LINE.match(line.strip())
        if match and match.group(1).rsplit(".", 1)[-1] not in _WRAPPERS:
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    if found is None:
        found = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"a training task failed: {found}"


def _launch(cfg: Config, payload: str, workers: int, train_path: str) -> dict[str, Any]:
    try:
        spark, owned = _session(cfg)
    except Exception as exc:  # Py4J / Spark start-up errors: bad master URL, no Java, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"cannot start Spark at spark.master {cfg.spark.master}: {first}"
        raise DistributedError(message) from None
    try:
        sc = spark.sparkContext
        slots = required_local_slots(sc.master)
        if slots is not None and slots < workers:
            raise ValueError(
                f"training.distributed.workers is {workers} but spark.master {sc.master} has "
                f"{slots} task slot(s); a barrier stage needs one per worker: use local[{workers}]"
            )
        if slots is None:
            # Local executors share the driver's interpreter and files; a cluster's need the code.
            _ship_code(sc)
        rdd = _shards(spark, train_path, workers).barrier()
        try:
            replies = rdd.mapPartitions(partial(train_task, payload)).collect()
        except Exception as exc:  # Py4JJavaError / PythonException from the stage
            raise DistributedError(task_failure(exc)) from None
    finally:
        if owned:
            spark.stop()
    if len(replies) != 1:
        raise DistributedError(f"expected rank 0's result only, got {len(replies)} replies")
    return json.loads(replies[0])


def train_distributed(
    cfg: Config, name: str, params: dict[str, Any], checkpoints: Path,
    epochs: int | None = None, resume: bool = False, progress: bool = True,
) -> tuple[Trainer, TrainResult]:  # fmt: skip
    """Train on `training.distributed.workers` Spark tasks; (driver trainer, result) to export.

    The driver builds the same model, loads rank 0's final weights into it and evaluates the
    test split itself, so the export path is the single-process one.
    """
    dist = cfg.training.distributed
    if resume:
        raise ValueError(
            "--resume: distributed training keeps its checkpoints on the executors and cannot "
            "resume; rerun without --resume or set training.distributed.workers: 1"
        )
    root = absolute_root(cfg.dataset_root())
    dataset = open_dataset(root)
    # The driver only scores and exports: no exclusion, no training sequences (the tasks
    # build their own from their shards).
    trainer = Trainer(dataset, cfg.training, name, params, checkpoints, progress=False,
                      trains=False)  # fmt: skip
    payload = json.dumps(
        {
            "training": cfg.training.model_dump(mode="json"),
            "dataset_root": root,
            "model": name,
            "params": params,
            "epochs": epochs or cfg.training.epochs,
        }
    )
    wall = time.perf_counter()
    reply = _launch(cfg, payload, dist.workers, dataset.path("train"))
    wall = time.perf_counter() - wall
    if progress:
        # The tasks' own output stays in the executors' logs; the epochs are reported here.
        for h in reply["history"]:
            print(
                f"epoch {h['epoch']}: loss {h['loss']:.4f}  val HR@10 {h['val_hr@10']:.4f}  "
                f"NDCG@10 {h['val_ndcg@10']:.4f}  {h['samples_per_sec']:.0f} ex/s"
            )
        share = reply["sync_seconds"] / max(reply["sync_seconds"] + reply["compute_seconds"], 1e-9)
        print(f"{dist.workers} workers, sync_every {dist.sync_every}: {share:.1%} of step time "
              f"synchronising, stage {wall:.1f} s")  # fmt: skip
    arrays, meta = decode(reply["weights"])
    by_name = {v.name: v for v in trainer.model.graph.variables}
    for var_name, value in zip(meta["names"], arrays, strict=True):
        trainer.session.set_value(by_name[var_name], value)
    if reply["metrics"].get("refit") and trainer.model.has_history:
        # The tasks refit on train + validation: the history the test split is scored with and
        # the version exports has each validation item as its user's newest.
        trainer._load_history(trainer.train, trainer.validation, sequences=False)
    test = trainer.evaluate(trainer.test)
    baseline = popularity_metrics(trainer.item_counts, trainer.test)
    busy = reply["sync_seconds"] + reply["compute_seconds"]
    metrics = {
        **reply["metrics"],
        **test,
        "distributed_workers": dist.workers,
        "distributed_sync_every": dist.sync_every,
        "distributed_sync_share": reply["sync_seconds"] / busy if busy > 0 else 0.0,
        "distributed_exchanges": reply["exchanges"],
        "distributed_stage_seconds": wall,
    }
    result = TrainResult(
        trainer.model, trainer.session, reply["history"], reply["best_epoch"], metrics,
        baseline, trainer.item_counts, checkpoints, extra={"distributed": reply},
    )  # fmt: skip
    return trainer, result
