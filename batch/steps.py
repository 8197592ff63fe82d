"""The daily chain's steps, each a function of the run's `DailyContext` returning its record.

A step reads what earlier steps left on the context (the trained result, the chosen version)
and returns a JSON-ready dict (row counts, metrics, decisions) for the run summary.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from batch.errors import error_line
from batch.gate import METRIC, decide, rescore
from batch.versions import BatchError, ModelVersion, latest_version, local_dir, resolve
from engine import SavedGraphError
from peppercorn.config import Config

__all__ = ["STEPS", "DailyContext"]


@dataclass
class DailyContext:
    """Everything one daily run shares between its steps."""

    cfg: Config
    day: str
    spark_factory: Any
    reuse_version: int | None = None
    serving: ModelVersion | None = None
    trainer: Any = None
    result: Any = None
    decision: dict | None = None
    version: int | None = None
    _spark: Any = field(default=None, repr=False)

    @property
    def spark(self):
        if self._spark is None:
            self._spark = self.spark_factory()
        return self._spark

    @property
    def model_name(self) -> str:
        return self.cfg.batch.model or self.cfg.model.name


def etl(ctx: DailyContext) -> dict:
    """Raw logs (generated when absent) -> clean tables -> features, a full rebuild."""
    import features
    from etl.job import raw_uri, run
    from peppercorn import storage

    cfg, spark = ctx.cfg, ctx.spark
    if cfg.dataset.kind == "synthetic" and not storage.exists(spark, raw_uri(cfg)):
        import datagen

        datagen.generate(cfg, spark)
    cleaned = run(cfg, spark)
    feats = features.run(cfg, spark)
    counts = feats.get("counts", feats) if isinstance(feats, dict) else {}
    return {"rows": {"clean": cleaned["rows"], "features": _plain(counts)}}


def _warm_start(trainer, serving: ModelVersion) -> dict:
    """Copy the serving version's weights into the fresh model where names and shapes match,
    only when both were built on the same vocabularies (indices mean the same ids)."""
    import json

    from engine.saved import load

    for vocab in ("user_id", "item_id"):
        file = serving.path / "assets" / "vocab" / f"{vocab}.json"
        if json.loads(file.read_text())["tokens"] != trainer.dataset.vocabs[vocab]["tokens"]:
            return {"from": serving.version, "applied": False, "reason": f"{vocab} vocab changed"}
    saved = load(serving.path)
    values = {v.name: saved.session.get_value(v) for v in saved.graph.variables}
    copied = 0
    for var in trainer.model.graph.variables:
        value = values.get(var.name)
        if value is not None and np.shape(value) == tuple(trainer.session.get_value(var).shape):
            trainer.session.set_value(var, np.asarray(value))
            copied += 1
    return {"from": serving.version, "applied": copied > 0, "variables": copied}


def train(ctx: DailyContext) -> dict:
    """Train the configured model (optionally from the serving weights); nothing exported yet."""
    from training.data import open_dataset
    from training.models import resolve_params
    from training.trainer import Trainer

    cfg, name = ctx.cfg, ctx.model_name
    params = resolve_params(name, cfg.model.params if name == cfg.model.name else {})
    dataset = open_dataset(cfg.dataset_root())
    folder = local_dir(cfg.dataset_root(), "dataset root") / "checkpoints" / name
    ctx.trainer = Trainer(dataset, cfg.training, name, params, folder, progress=False)
    record: dict[str, Any] = {"rows": {"train": ctx.trainer.train.count}}
    if cfg.batch.warm_start and ctx.serving is not None:
        record["warm_start"] = _warm_start(ctx.trainer, ctx.serving)
    ctx.result = ctx.trainer.fit()
    record["metrics"] = _plain(ctx.result.metrics)
    return record


def gate(ctx: DailyContext) -> dict:
    """Decide whether the trained model replaces the serving version, both scored on this
    run's test split (see batch.gate)."""
    serving, value, why = ctx.serving, None, "no serving version"
    if serving is not None:
        try:
            value = rescore(serving.path, ctx.trainer.dataset.vocabs, ctx.trainer.test)[METRIC]
        except (SavedGraphError, OSError, KeyError, ValueError) as exc:
            why = f"serving version {serving.version} does not load ({error_line(exc)})"
    ctx.decision = decide(
        ctx.result.metrics[METRIC],
        value,
        serving.version if serving else None,
        ctx.cfg.batch.promotion_margin,
        why,
    )
    return {"decision": ctx.decision}


def export(ctx: DailyContext) -> dict:
    """Export the trained model as a new version when the gate promoted it."""
    from training.export import export_model
    from training.report import write_report

    if not ctx.decision["promote"]:
        ctx.version = ctx.serving.version if ctx.serving else None
        return {"exported": None, "serving_version": ctx.version}
    cfg, r = ctx.cfg, ctx.result
    repository = local_dir(cfg.paths.model_repository, "paths.model_repository")
    with tempfile.TemporaryDirectory(prefix="peppercorn-report-") as tmp:
        write_report(Path(tmp), ctx.model_name, r.model.params, r.history, r.metrics, r.baseline)
        path = export_model(r, ctx.trainer.dataset, ctx.trainer.seen, repository,
                            ctx.model_name, Path(tmp))  # fmt: skip
    ctx.version = int(path.name)
    return {"exported": ctx.version, "path": str(path)}


def batch(ctx: DailyContext) -> dict:
    """Top-K for every user with the version this run promoted (or the serving one)."""
    from batch.job import run

    if ctx.version is None:
        repo = local_dir(ctx.cfg.paths.model_repository, "paths.model_repository")
        ctx.version = latest_version(repo, ctx.model_name)
        if ctx.version is None:
            raise BatchError("no model version to score with (the gate refused and none serves)")
    summary = run(ctx.cfg, ctx.spark, ctx.day, ctx.version)
    return {"rows": {"recommendations": summary["rows"]}, "version": summary["version"],
            "output": summary["output"]}  # fmt: skip


def find_serving(ctx: DailyContext) -> None:
    """The latest exported version before this run (what the server answers with now)."""
    repo = local_dir(ctx.cfg.paths.model_repository, "paths.model_repository")
    latest = latest_version(repo.resolve(), ctx.model_name)
    ctx.serving = (
        resolve(ctx.cfg.paths.model_repository, ctx.model_name, latest) if latest else None
    )


def _plain(value):
    """JSON-ready copy: numpy scalars to Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


STEPS = (("etl", etl), ("train", train), ("gate", gate), ("export", export), ("batch", batch))
