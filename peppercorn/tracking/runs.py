"""One tracked run: `RunTracker` writes it, `read_runs` reads runs back.

A run records what `make train`, `python -m bench.train` and the daily run did: the config
(every key as a parameter, the resolved model parameters, the config file as an artifact),
the features dataset (checksum, sizes, as an MLflow dataset input), per-epoch losses and
validation figures as they happen, the final sampled and full-catalogue test figures, train
time and throughput, the report with its plots, and the exported version (path, checksum,
and a model-registry version). Tracking never stops training: once a call fails (a tracking
server gone, a full disk) the tracker warns once, says why, and records nothing more.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peppercorn.config import Config
from peppercorn.tracking.names import metric_key
from peppercorn.tracking.store import TrackingTarget

__all__ = ["RunTracker", "TrackedRun", "epoch_metrics", "final_metrics", "read_runs"]

log = logging.getLogger(__name__)
_DOWN: dict[str, str] = {}  # store URI -> why, so a down server is probed and warned once
_BATCH = 100  # MLflow's limit of parameters in one log_batch call
_RUN_FIGURES = {
    "epochs", "best_epoch", "train_seconds", "wall_seconds", "train_samples",
    "train_samples_per_sec", "full_eval_seconds", "full_users",
}  # fmt: skip
SOURCE_TAG = "peppercorn.source"  # make train | bench.train | daily | ...


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def epoch_metrics(phase: str, record: Mapping[str, Any]) -> dict[str, float]:
    """A per-epoch record's tracked figures: `train/loss`, `val/ndcg_at_10`, ... (a refit
    epoch's under `refit/`)."""
    split = "refit" if phase == "refit" else "train"
    out = {}
    for key, value in record.items():
        number = _number(value)
        if number is None or key == "epoch":
            continue
        if key.startswith("val_"):
            out[metric_key("val", key[4:])] = number
        elif key == "seconds":
            out[f"{split}/epoch_seconds"] = number
        else:
            out[metric_key(split, key)] = number
    return out


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A finished run's figures: `test/...` (sampled and `full_*`), `popularity/...` (the
    most-popular baseline), `best_val/...` (validation at the chosen epoch), `run/...`
    (epochs, times, throughput), `distributed/...`."""
    out = {}
    for key, value in metrics.items():
        number = _number(value)
        if number is None:
            continue
        if key.startswith("popularity_"):
            out[metric_key("popularity", key.removeprefix("popularity_"))] = number
        elif key.startswith("validation_"):
            out[metric_key("best_val", key.removeprefix("validation_"))] = number
        elif key.startswith("distributed_"):
            out[metric_key("distributed", key.removeprefix("distributed_"))] = number
        elif key in _RUN_FIGURES:
            out[metric_key("run", key)] = number
        else:
            out[metric_key("test", key)] = number
    return out


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif value is not None:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[prefix] = text[:6000]  # MLflow's longest parameter value


class RunTracker:
    """Records one run; every method does nothing once tracking is off or has failed."""

    def __init__(self, target: TrackingTarget | None = None):
        self.target = target
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._client = None
        self._epochs: set[tuple[str, int]] = set()
        self.registered: tuple[str, str] | None = None  # (model, registry version) exported

    # ---- lifecycle -------------------------------------------------------------------
    @classmethod
    def start(
        cls, cfg: Config, source: str, run_name: str | None = None, tags: Mapping | None = None
    ) -> RunTracker:
        """A new run in `cfg`'s store, or a tracker that records nothing (tracking off, or
        the store unreachable: warned once per store and process)."""
        target = TrackingTarget.from_config(cfg)
        tracker = cls(target)
        if not target.enabled:
            return tracker
        if target.uri in _DOWN:
            return tracker
        why = target.unreachable()
        if why is not None:
            tracker._give_up(why)
            return tracker
        tracker._call("start the run", tracker._create, source, run_name, dict(tags or {}))
        return tracker

    @property
    def active(self) -> bool:
        """Whether this run is still being recorded."""
        return self.run_id is not None

    def _create(self, source: str, run_name: str | None, tags: dict) -> None:
        from mlflow.utils.mlflow_tags import MLFLOW_SOURCE_NAME, MLFLOW_USER

        client = self.target.client()
        self.experiment_id = self.target.experiment_id(client)
        tags = {SOURCE_TAG: source, MLFLOW_SOURCE_NAME: source, **tags}
        try:
            import getpass

            tags.setdefault(MLFLOW_USER, getpass.getuser())
        except (KeyError, OSError):  # no user name in a bare container
            pass
        commit = _git_commit()
        if commit:
            tags.setdefault("mlflow.source.git.commit", commit)
        run = client.create_run(self.experiment_id, tags=tags, run_name=run_name)
        self._client, self.run_id = client, run.info.run_id

    def _give_up(self, why: str) -> None:
        if self.target is not None:
            _DOWN.setdefault(self.target.uri, why)
        log.warning("experiment tracking is off for this run: %s (training goes on)", why)
        self.run_id, self._client = None, None

    def _call(self, what: str, fn, *args) -> Any:
        """Run one tracking call; the first failure turns tracking off for this run."""
        if self.target is None or not self.target.enabled:
            return None
        if fn != self._create and not self.active:
            return None
        try:
            return fn(*args)
        except Exception as exc:  # any store error: tracking must never stop training
            self._give_up(f"could not {what} in {self.target.uri}: {type(exc).__name__}: {exc}")
            return None

    def end(self, failed: bool = False) -> None:
        """Mark the run FINISHED (or FAILED)."""
        status = "FAILED" if failed else "FINISHED"
        self._call("end the run", lambda: self._client.set_terminated(self.run_id, status))
        self.run_id = None

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, kind, *_) -> None:
        self.end(failed=kind is not None)

    # ---- what a run records ----------------------------------------------------------
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Tags (strings) on the run."""
        strings = {str(k): str(v) for k, v in tags.items() if v is not None}
        self._call("set tags", self._log, {}, {}, strings)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters, nested mappings flattened to dotted keys."""
        flat: dict[str, str] = {}
        _flatten("", dict(params), flat)
        self._call("log parameters", self._log, {}, flat, {})

    def log_config(self, cfg: Config, model_params: Mapping[str, Any]) -> None:
        """Every config key as a parameter (`training.learning_rate`, ...), the model's
        resolved parameters (`model.params.*`, defaults included) and the config file."""
        data = cfg.model_dump(mode="json")
        data["model"] = {**data["model"], "params": dict(model_params)}
        self.log_params(data)
        if cfg.source:
            self.set_tags({"peppercorn.config": cfg.source})
        import yaml

        text = yaml.safe_dump(data, sort_keys=True)
        self._call("log the config", self._log_text, text, "config.yaml")

    def log_dataset(self, dataset: Any) -> None:
        """The features dataset (`training.data.FeatureDataset`): checksum and sizes as
        parameters, and an MLflow dataset input naming its root."""
        counts = dict(dataset.manifest.get("counts", {}))
        sizes = {"n_users": dataset.n_users, "n_items": dataset.n_items, **counts}
        self.log_params({"data": {"checksum": dataset.checksum, "root": str(dataset.root),
                                  **sizes}})  # fmt: skip
        self._call("log the dataset", self._log_input, dataset, sizes)

    def log_epoch(self, phase: str, record: Mapping[str, Any]) -> None:
        """One epoch's figures (`phase` "select" or "refit"), step = epoch."""
        epoch = int(record["epoch"])
        if (phase, epoch) in self._epochs:
            return
        self._epochs.add((phase, epoch))
        self._call("log an epoch", self._log, epoch_metrics(phase, record), {}, {}, epoch)

    def log_result(self, result: Any) -> None:
        """A finished `TrainResult`: any epochs not logged live (a distributed run's), the
        final figures and the exported-model-to-be's best epoch."""
        for record in result.history:
            self.log_epoch("select", record)
        self._call("log the results", self._log, final_metrics(result.metrics), {}, {})

    def log_report(self, folder: Path) -> None:
        """The report folder (report.md and its plots) under `report/`."""
        self._call(
            "log the report",
            lambda: self._client.log_artifacts(self.run_id, str(folder), "report"),
        )

    def log_export(self, version: Any) -> None:
        """The exported version (`ExportedVersion`): tags with its URI and checksum, and a
        version of the same name in the model registry pointing back to this run."""
        from peppercorn.tracking.registry import register_version

        checksum = version.checksum()
        self.set_tags({"peppercorn.version": version.version, "peppercorn.model": version.name,
                       "peppercorn.version_uri": version.uri,
                       "peppercorn.version_checksum": checksum})  # fmt: skip
        number = self._call(
            "register the version", register_version, self._client, self.run_id, version, checksum
        )
        if number is not None:
            self.registered = (version.name, number)

    def set_alias(self, alias: str) -> str | None:
        """Point the registry alias `alias` at the version this run exported; returns the
        registry version, or None when nothing was registered (tracking off or failed)."""
        if self.registered is None:
            return None
        model, number = self.registered
        done = self._call(
            f"set the alias {alias}",
            lambda: self._client.set_registered_model_alias(model, alias, number) or True,
        )
        return number if done else None

    def log_json(self, data: Mapping[str, Any], name: str) -> None:
        """A JSON artifact (e.g. the daily run's summary)."""
        self._call(f"log {name}", lambda: self._client.log_dict(self.run_id, dict(data), name))

    # ---- MLflow calls ----------------------------------------------------------------
    def _log(self, metrics: dict, params: dict, tags: dict, step: int = 0) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        ms = [Metric(k, v if math.isfinite(v) else float("nan"), now, step)
              for k, v in metrics.items()]  # fmt: skip
        ps = [Param(k, v) for k, v in params.items()]
        ts = [RunTag(k, v) for k, v in tags.items()]
        for i in range(0, max(len(ms), len(ps), len(ts), 1), _BATCH):
            chunk = slice(i, i + _BATCH)
            if ms[chunk] or ps[chunk] or ts[chunk]:
                self._client.log_batch(self.run_id, ms[chunk], ps[chunk], ts[chunk])

    def _log_text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def _log_input(self, dataset: Any, sizes: dict) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        entity = Dataset(
            name=str(dataset.manifest.get("dataset", "features")),
            digest=dataset.checksum.removeprefix("sha256:")[:12],  # MLflow keeps 36 chars
            source_type="peppercorn-features",
            source=json.dumps({"uri": str(dataset.root), "checksum": dataset.checksum}),
            profile=json.dumps(sizes),
        )
        tag = InputTag("mlflow.data.context", "training")
        self._client.log_inputs(self.run_id, [DatasetInput(entity, [tag])])


def _git_commit() -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@dataclass
class TrackedRun:
    """A run as `read_runs` returns it."""

    run_id: str
    experiment: str
    name: str
    status: str
    start_time: int  # ms since the epoch
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifacts: list[str] = field(default_factory=list)


def read_runs(
    target: TrackingTarget, experiments: Iterable[str] | None = None, artifacts: bool = False
) -> list[TrackedRun]:
    """Every run of `experiments` (default: all) in `target`'s store, newest first (with
    their top-level artifact paths when `artifacts`). A store never written to has none."""
    if not target.exists():
        return []
    client = target.client()
    found = client.search_experiments()
    names = {e.experiment_id: e.name for e in found}
    wanted = [i for i, n in names.items() if experiments is None or n in set(experiments)]
    if not wanted:
        return []
    out = []
    for run in client.search_runs(wanted, order_by=["attributes.start_time DESC"],
                                  max_results=50_000):  # fmt: skip
        listed = []
        if artifacts:
            listed = [f.path for f in client.list_artifacts(run.info.run_id)]
        out.append(TrackedRun(
            run.info.run_id, names[run.info.experiment_id], run.info.run_name or "",
            run.info.status, run.info.start_time, dict(run.data.params),
            dict(run.data.metrics), dict(run.data.tags), listed,
        ))  # fmt: skip
    return out
