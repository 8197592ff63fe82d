"""The pipeline's stages, each `stage(ctx) -> summary` (a JSON-ready dict).

`python -m pipeline <command>`, the Makefile and the daily run all call these functions, so a
setting is honoured the same way wherever a stage runs. Chains are tuples of stages:
`ETL` (raw logs -> clean tables -> features) and `TRAIN` (train -> export); the daily run adds
its promotion gate and batch scoring (`pipeline.daily`).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.context import RunContext, checkpoint_dir

__all__ = [
    "ETL",
    "TRAIN",
    "batch",
    "etl",
    "export",
    "features",
    "plain",
    "raw",
    "run_chain",
    "train",
    "train_and_export",
]


def plain(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def raw(ctx: RunContext) -> dict:
    """Synthetic raw logs, (re)generated when missing, written by another generator version or
    other `dataset.synthetic` settings, or when `ctx.regenerate`; other dataset kinds read
    `dataset.path` as it is."""
    import datagen

    cfg = ctx.cfg
    if cfg.dataset.kind != "synthetic":
        return {"generated": False, "reason": f"dataset.kind {cfg.dataset.kind} is read as it is"}
    reason = "asked to regenerate" if ctx.regenerate else datagen.stale_reason(cfg, ctx.spark)
    if reason is None:
        return {"generated": False, "reason": "raw logs are current"}
    if ctx.progress:
        print(f"generating synthetic raw logs ({reason}) ...", flush=True)
    return {"generated": True, "reason": reason, **datagen.generate(cfg, ctx.spark)}


def etl(ctx: RunContext) -> dict:
    """Raw -> clean tables and the quarantine (`etl.run`)."""
    import etl as etl_job

    began = time.perf_counter()
    return {**etl_job.run(ctx.cfg, ctx.spark), "seconds": round(time.perf_counter() - began, 3)}


def features(ctx: RunContext) -> dict:
    """Clean tables -> profiles, vocabularies and training/evaluation datasets."""
    import features as features_job

    began = time.perf_counter()
    summary = features_job.run(ctx.cfg, ctx.spark)
    return {**summary, "seconds": round(time.perf_counter() - began, 3)}


def _warm_start(trainer, version) -> dict:
    """Copy `version`'s weights into the fresh model where names and shapes match, only when
    both were built on the same vocabularies (indices mean the same ids)."""
    loaded = version.open()
    for vocab in ("user_id", "item_id"):
        if loaded.vocabs[vocab].tokens != [str(t) for t in trainer.dataset.vocabs[vocab]["tokens"]]:
            return {"from": version.version, "applied": False, "reason": f"{vocab} vocab changed"}
    values = loaded.variables()
    copied = 0
    for var in trainer.model.graph.variables:
        value = values.get(var.name)
        if value is not None and np.shape(value) == tuple(trainer.session.get_value(var).shape):
            trainer.session.set_value(var, np.asarray(value))
            copied += 1
    return {"from": version.version, "applied": copied > 0, "variables": copied}


def train(ctx: RunContext) -> dict:
    """Train `model.name` on the features stage's datasets (data-parallel over Spark when
    `training.distributed.workers` > 1); nothing is exported yet."""
    from training.data import open_dataset
    from training.models import resolve_params
    from training.trainer import Trainer

    cfg = ctx.cfg
    name = cfg.model.name
    params = resolve_params(name, cfg.model.params)
    checkpoints = checkpoint_dir(cfg)
    record: dict[str, Any] = {"model": name}
    tracker = _tracker(ctx, params)
    if cfg.training.distributed.workers > 1:
        from training.distributed import train_distributed

        if ctx.warm_from is not None:
            raise ValueError(
                "batch.warm_start: distributed training starts every worker from fresh weights; "
                "set training.distributed.workers: 1 or batch.warm_start: false"
            )
        ctx.trainer, ctx.result = train_distributed(
            cfg, name, params, checkpoints, None, ctx.resume, ctx.progress
        )
        tracker.log_dataset(ctx.trainer.dataset)  # its epochs come with the result
    else:
        dataset = open_dataset(cfg.dataset_root())
        tracker.log_dataset(dataset)
        ctx.trainer = Trainer(
            dataset, cfg.training, name, params, checkpoints, progress=ctx.progress,
            on_epoch=tracker.log_epoch,
        )  # fmt: skip
        if ctx.warm_from is not None:
            record["warm_start"] = _warm_start(ctx.trainer, ctx.warm_from)
            tracker.set_tags({"peppercorn.warm_start": json.dumps(plain(record["warm_start"]))})
        ctx.result = ctx.trainer.fit(resume=ctx.resume)
    tracker.log_result(ctx.result)
    record["rows"] = {"train": ctx.trainer.train.count}
    record["metrics"] = plain(ctx.result.metrics)
    if tracker.active:
        record["tracking"] = {"uri": tracker.target.uri, "run_id": tracker.run_id}
    return record


def _tracker(ctx: RunContext, params: dict[str, Any]):
    """The run's tracker (`peppercorn.tracking`), started with the config on first use."""
    from peppercorn.tracking.runs import RunTracker

    if ctx.tracker is None:
        cfg = ctx.cfg
        tags = {"peppercorn.model": cfg.model.name, "peppercorn.dataset": cfg.dataset.name}
        if ctx.day:
            tags["peppercorn.dt"] = ctx.day
        run_name = f"{cfg.model.name}-{ctx.source.replace(' ', '-')}"
        ctx.tracker = RunTracker.start(cfg, ctx.source, run_name, tags)
    ctx.tracker.log_config(ctx.cfg, params)
    return ctx.tracker


def export(ctx: RunContext) -> dict:
    """Publish the trained model, with its report, as a new version in the repository."""
    from training.export import export_model
    from training.report import write_report

    began = time.perf_counter()
    r, name = ctx.result, ctx.cfg.model.name
    with tempfile.TemporaryDirectory(prefix="peppercorn-report-") as tmp:
        write_report(Path(tmp), name, r.model.params, r.history, r.metrics, r.baseline)
        ctx.exported = export_model(
            r, ctx.trainer.dataset, ctx.trainer.seen, ctx.repository, name, Path(tmp)
        )
        if ctx.tracker is not None:
            ctx.tracker.log_report(Path(tmp))
    if ctx.tracker is not None:
        ctx.tracker.log_export(ctx.exported)
    if ctx.progress:  # the one figure `make train` did not print (bench/platform.py reads it)
        print(f"export: {time.perf_counter() - began:.1f} s", flush=True)
    return {"exported": ctx.exported.version, "uri": ctx.exported.uri}


def batch(ctx: RunContext) -> dict:
    """Top-K for every user with `ctx.batch_version` (default: the latest) of the batch model,
    written as the `ctx.day` partition."""
    from batch.job import run

    return run(ctx.cfg, ctx.spark, ctx.day, ctx.batch_version)


ETL = (raw, etl, features)
TRAIN = (train, export)


def run_chain(ctx: RunContext, stages) -> dict[str, dict]:
    """Run `stages` in order on `ctx`; their summaries by stage name."""
    return {stage.__name__: stage(ctx) for stage in stages}


def train_and_export(cfg, progress: bool = False, source: str = "pipeline train"):
    """`make train` as a function: (the exported version, its metrics); the tracked run's
    source tag is `source`."""
    ctx = RunContext(cfg, progress=progress, source=source)
    failed = True
    try:
        run_chain(ctx, TRAIN)
        failed = False
    finally:
        ctx.close(failed=failed)
    return ctx.exported, ctx.result.metrics
