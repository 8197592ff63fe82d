"""The scheduled daily chain: etl -> train -> gate -> export -> batch, for one day.

The steps are the stages `make etl`, `make train` and `make batch` run (`pipeline.stages`),
on one `RunContext` sharing one SparkSession, so every setting is honoured as it is there
(`training.distributed`, stale synthetic logs regenerated, the same checkpoint folder).
Guarantees:

- one run at a time: an exclusive flock (`pipeline.lock`); a second run exits 3 with a
  message naming the holder and touches nothing;
- idempotent per day: the ETL and the day's top-K partition are replaced, never appended; a
  re-run of a day that already exported a version reuses that version (`retrain` trains
  again) instead of exporting a duplicate;
- a failing step stops the chain; the summary names it and keeps its error;
- every run (failed or not) writes `<dataset root>/daily/dt=<day>/summary.json`: steps,
  durations, row counts, model version, metrics and the gate decision;
- every run is tracked (`peppercorn.tracking`): the candidate the gate promotes is registered
  and the registry alias `tracking.promotion_alias` (`stable`) moved to it; the version to
  beat is the one that alias names (the latest version when there is none);
- every run keeps the online store (`pipeline.store_upkeep`): expired entries dropped, the
  rest (posted since training) kept, its size in the summary; an unavailable store is
  reported there, never a failure.
"""

from __future__ import annotations

import datetime as dt_
import json
import time
import traceback
from pathlib import Path

from peppercorn.config import Config, join_uri
from peppercorn.fs import filesystem, is_local, read_bytes, write_bytes
from pipeline import stages
from pipeline.context import RunContext
from pipeline.errors import error_line
from pipeline.store_upkeep import keep_store

__all__ = ["STEP_NAMES", "lock_path", "run_daily", "serving_version", "summary_uri"]


def etl(ctx: RunContext) -> dict:
    """The ETL chain of `make etl`: raw logs when needed, clean tables, features."""
    out = stages.run_chain(ctx, stages.ETL)
    counts = {k: v for k, v in out["features"].items() if isinstance(v, int)}
    return {"rows": {"clean": out["etl"]["rows"], "features": counts}, "raw": out["raw"]}


def gate(ctx: RunContext) -> dict:
    """Whether the trained model replaces the serving version, both scored on this run's
    test split (see pipeline.gate)."""
    from peppercorn.loaded_version import VersionError
    from pipeline.gate import METRIC, decide, rescore

    serving, value, why = ctx.serving, None, "no serving version"
    if serving is not None:
        try:
            value = rescore(serving.open(), ctx.trainer.dataset.vocabs, ctx.trainer.test)[METRIC]
        except VersionError as exc:
            why = f"serving version {serving.version} does not load ({exc.code}: {exc})"
    ctx.decision = decide(
        ctx.result.metrics[METRIC],
        value,
        serving.version if serving else None,
        ctx.cfg.batch.promotion_margin,
        why,
    )
    if ctx.tracker is not None:
        verdict = "promoted" if ctx.decision["promote"] else "refused"
        ctx.tracker.set_tags({"peppercorn.gate": verdict,
                              "peppercorn.gate_reason": ctx.decision["reason"]})  # fmt: skip
    return {"decision": ctx.decision}


def export(ctx: RunContext) -> dict:
    """Export the trained model as a new version when the gate promoted it."""
    if not ctx.decision["promote"]:
        ctx.batch_version = ctx.serving.version if ctx.serving else None
        return {"exported": None, "serving_version": ctx.batch_version}
    record = stages.export(ctx)
    ctx.batch_version = ctx.exported.version
    alias = ctx.cfg.tracking.promotion_alias
    registered = ctx.tracker.set_alias(alias) if ctx.tracker is not None else None
    record["alias"] = (
        {"name": alias, "registry_version": registered}
        if registered is not None
        else {"name": alias, "set": False, "reason": "tracking is off or failed for this run"}
    )
    return record


def batch(ctx: RunContext) -> dict:
    """Top-K for every user with the version this run promoted (or the serving one)."""
    if ctx.batch_version is None and ctx.serving is not None:
        ctx.batch_version = ctx.serving.version  # the chain was started at this step
    if ctx.batch_version is None:
        raise RuntimeError("no model version to score with (the gate refused and none serves)")
    summary = stages.batch(ctx)
    return {"rows": {"recommendations": summary["rows"]}, "version": summary["version"],
            "output": summary["output"]}  # fmt: skip


STEPS = (("etl", etl), ("train", stages.train), ("gate", gate), ("export", export),
         ("batch", batch))  # fmt: skip
STEP_NAMES = [name for name, _ in STEPS]
_REUSABLE = {"train", "gate", "export"}


def summary_uri(cfg: Config, day: str) -> str:
    """Where the run summary of `day` lives."""
    return join_uri(cfg.dataset_root(), "daily", f"dt={day}", "summary.json")


def lock_path(cfg: Config) -> Path:
    """The daily lock: under a local data root, else in `.locks/` here (it then keeps runs
    on this machine apart only: schedule the daily run on one machine)."""
    root = cfg.paths.data_root
    if is_local(root):
        return Path(root.removeprefix("file://").removeprefix("file:")) / ".locks" / "daily.lock"
    return Path(".locks") / f"{cfg.dataset.name}-daily.lock"


def _read_summary(cfg: Config, day: str) -> dict | None:
    fs, path = filesystem(summary_uri(cfg, day))
    try:
        return json.loads(read_bytes(fs, path))
    except (FileNotFoundError, ValueError):
        return None


def _write_summary(cfg: Config, day: str, summary: dict) -> None:
    uri = summary_uri(cfg, day)
    fs, path = filesystem(uri)
    data = (json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    if not is_local(uri):
        write_bytes(fs, path, data)  # one PUT: an object appears whole
        return
    write_bytes(fs, f"{path}.tmp", data)
    fs.move(f"{path}.tmp", path)  # a rename: readers never see half a summary


def run_daily(cfg: Config, day: str, from_step: str = "etl", retrain: bool = False) -> dict:
    """Run the chain for `day`; returns the summary (also written to `summary_uri`)."""
    ctx = RunContext(cfg, progress=True, day=day, source="pipeline daily")
    model = cfg.model.name
    tracker = None
    try:
        previous = None if retrain else _read_summary(cfg, day)
        reuse = previous.get("exported_version") if previous else None
        if reuse not in ctx.repository.versions(model):
            reuse = None
        serving, chosen_by = serving_version(ctx)
        ctx.serving = ctx.repository.version(model, serving) if serving else None
        if cfg.batch.warm_start:
            ctx.warm_from = ctx.serving
        summary = _run_steps(ctx, from_step, reuse, previous)
        summary["serving_version_chosen_by"] = chosen_by
    except BaseException:
        ctx.close(failed=True)
        raise
    tracker, ctx.tracker = ctx.tracker, None  # ended below, once the summary is complete
    ctx.close()
    # Whether or not the chain succeeded: the store's expiry does not depend on the model.
    summary["online_store"] = keep_store(cfg)
    _write_summary(cfg, day, summary)
    if tracker is not None:
        tracker.log_json(summary, "daily/summary.json")
        tracker.end(failed=summary["status"] == "failed")
    return summary


def serving_version(ctx: RunContext) -> tuple[int | None, str]:
    """The version the candidate must beat, and how it was chosen: the one the registry's
    promotion alias (`tracking.promotion_alias`) names, else the repository's latest."""
    from peppercorn.tracking.registry import alias_targets
    from peppercorn.tracking.store import TrackingTarget

    model, alias = ctx.cfg.model.name, ctx.cfg.tracking.promotion_alias
    latest = ctx.repository.latest(model)
    target = TrackingTarget.from_config(ctx.cfg)
    if not target.enabled or not target.exists():
        return latest, "latest (tracking is off or has no registry yet)"
    down = target.unreachable()  # a quick check: the client's own retries take far longer
    if down is not None:
        return latest, f"latest (the registry could not be read: {down})"
    try:
        found = alias_targets(target.client(), model, ctx.repository.uri).get(alias)
    except Exception as exc:  # an unreachable registry must not stop the daily run
        return latest, f"latest (the registry could not be read: {error_line(exc)})"
    if found is None:
        return latest, f"latest (no {alias} alias in the registry)"
    if found.version is None:
        return latest, f"latest ({found.problem})"
    if found.version not in ctx.repository.versions(model):
        missing = f"alias {alias} names version {found.version}, not in the repository"
        return latest, f"latest ({missing})"
    return found.version, f"alias {alias} (registry version {found.registry_version})"


def _run_steps(ctx: RunContext, from_step: str, reuse: int | None, previous: dict | None):
    summary: dict = {
        "dt": ctx.day,
        "config": ctx.cfg.source,
        "model": ctx.cfg.model.name,
        "serving_version_before": ctx.serving.version if ctx.serving else None,
        "started_at": dt_.datetime.now(dt_.timezone.utc).isoformat(timespec="seconds"),
        "steps": [],
        "exported_version": reuse,
    }
    start, failed = time.perf_counter(), None
    for index, (name, step) in enumerate(STEPS):
        if failed or index < STEP_NAMES.index(from_step):
            summary["steps"].append({"name": name, "status": "not run" if failed else "skipped"})
            continue
        if reuse is not None and name in _REUSABLE:
            ctx.batch_version = reuse
            summary["steps"].append({"name": name, "status": f"reused version {reuse}"})
            continue
        began = time.perf_counter()
        try:
            record = step(ctx)
        except Exception as exc:  # any failure ends the chain; the summary keeps the cause
            failed = {"step": name, "error": error_line(exc)}
            record = {"status": "failed", "error": failed["error"],
                      "traceback": traceback.format_exc(limit=8)}  # fmt: skip
        else:
            record = {"status": "succeeded", **stages.plain(record)}
        record["seconds"] = round(time.perf_counter() - began, 3)
        summary["steps"].append({"name": name, **record})
    if reuse is not None:
        # The day's decision and metrics are those of the run that exported the version.
        summary.update(gate=previous.get("gate"), metrics=previous.get("metrics"))
    if ctx.decision is not None:
        summary["gate"] = ctx.decision
        summary["exported_version"] = ctx.batch_version if ctx.decision["promote"] else None
    if ctx.result is not None:
        summary["metrics"] = stages.plain(ctx.result.metrics)
    summary.update(
        status="failed" if failed else "succeeded",
        failed_step=failed["step"] if failed else None,
        version=ctx.batch_version,
        seconds=round(time.perf_counter() - start, 3),
    )
    return summary
