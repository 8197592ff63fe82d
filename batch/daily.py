"""`python -m batch.daily --config FILE --dt YYYY-MM-DD`: the scheduled daily chain.

etl (full rebuild: raw -> clean -> features) -> train -> gate -> export -> batch, in one
process sharing one SparkSession.  Guarantees:

- one run at a time: an exclusive flock on `<data_root>/.locks/daily.lock`; a second run
  exits 3 with a message naming the holder and touches nothing;
- idempotent per dt: the ETL and the day's top-K partition are replaced, never appended; a
  re-run of a day that already exported a version reuses that version (`--retrain` trains
  again) instead of exporting a duplicate;
- a failing step stops the chain: exit 1, the step named on stderr and in the summary;
- every run (failed or not) writes `<data_root>/<name>/daily/dt=<dt>/summary.json`: steps,
  durations, row counts, model version, metrics and the gate decision.
"""

from __future__ import annotations

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads: training runs in this process

import argparse  # noqa: E402
import datetime as dt_  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

from batch.errors import error_line  # noqa: E402
from batch.lock import LockHeld, exclusive_lock  # noqa: E402
from batch.steps import STEPS, DailyContext, find_serving  # noqa: E402
from batch.versions import BatchError, local_dir  # noqa: E402
from peppercorn.config import Config, ConfigError, load_config  # noqa: E402

__all__ = ["main", "run_daily", "summary_path"]

STEP_NAMES = [name for name, _ in STEPS]
_REUSABLE = {"train", "gate", "export"}


def summary_path(cfg: Config, day: str) -> Path:
    """Where the run summary of `day` lives."""
    return local_dir(cfg.dataset_root(), "dataset root") / "daily" / f"dt={day}" / "summary.json"


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _previous_run(cfg: Config, day: str, model: str) -> dict | None:
    """The summary of an earlier run of `day` that exported a version still in the repository."""
    path = summary_path(cfg, day)
    if not path.is_file():
        return None
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        return None
    version = previous.get("exported_version")
    repo = local_dir(cfg.paths.model_repository, "paths.model_repository")
    exists = version is not None and (repo / model / str(version) / "manifest.json").is_file()
    return previous if exists else None


def run_daily(
    cfg: Config, day: str, spark_factory, from_step: str = "etl", retrain: bool = False
) -> dict:
    """Run the chain for `day`; returns the summary (also written to `summary_path`)."""
    ctx = DailyContext(cfg, day, spark_factory)
    previous = None if retrain else _previous_run(cfg, day, ctx.model_name)
    reuse = previous["exported_version"] if previous else None
    find_serving(ctx)
    summary: dict = {
        "dt": day,
        "config": cfg.source,
        "model": ctx.model_name,
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
            ctx.version = reuse
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
            record = {"status": "succeeded", **record}
        record["seconds"] = round(time.perf_counter() - began, 3)
        summary["steps"].append({"name": name, **record})
    if reuse is not None:
        # The day's decision and metrics are those of the run that exported the version.
        summary.update(gate=previous.get("gate"), metrics=previous.get("metrics"))
    if ctx.decision is not None:
        summary["gate"] = ctx.decision
        summary["exported_version"] = ctx.version if ctx.decision["promote"] else None
    if ctx.result is not None:
        summary["metrics"] = next(s for s in summary["steps"] if s["name"] == "train")["metrics"]
    summary.update(
        status="failed" if failed else "succeeded",
        failed_step=failed["step"] if failed else None,
        version=ctx.version,
        seconds=round(time.perf_counter() - start, 3),
    )
    _write_json(summary_path(cfg, day), summary)
    return summary


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    summary_line = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m batch.daily", description=summary_line)
    parser.add_argument("--config", default="configs/default.yaml", help="pipeline YAML config")
    parser.add_argument(
        "--dt",
        default=dt_.datetime.now(dt_.timezone.utc).date().isoformat(),
        help="the day to run (default: today, UTC)",
    )
    parser.add_argument("--from-step", choices=STEP_NAMES, default="etl",
                        help="start the chain here (after fixing a failed step)")  # fmt: skip
    parser.add_argument("--retrain", action="store_true",
                        help="train again even if this day already exported a version")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """0 on success, 1 when a step failed, 2 on bad arguments or config, 3 when locked."""
    args = _parse_args(argv)
    try:
        cfg = load_config(args.config)
        day = dt_.date.fromisoformat(args.dt).isoformat()
        lock = local_dir(cfg.paths.data_root, "paths.data_root") / ".locks" / "daily.lock"
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError:
        print(f"error: --dt {args.dt!r}: expected a date like 2026-10-31", file=sys.stderr)
        return 2
    except BatchError as exc:
        print(f"error: {exc} (the daily lock needs a local data root)", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    from peppercorn.spark import get_spark

    owned = SparkSession.getActiveSession() is None
    try:
        with exclusive_lock(lock, {"dt": day, "config": cfg.source}):
            summary = run_daily(
                cfg, day, lambda: get_spark(cfg.spark, f"{cfg.spark.app_name}-daily"),
                args.from_step, args.retrain,
            )  # fmt: skip
    except LockHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        active = SparkSession.getActiveSession()
        if owned and active is not None:
            active.stop()
    where = summary_path(cfg, day)
    if summary["status"] == "failed":
        step = next(s for s in summary["steps"] if s["name"] == summary["failed_step"])
        print(f"error: daily dt={day}: step '{step['name']}' failed: {step['error']} "
              f"(summary: {where})", file=sys.stderr)  # fmt: skip
        return 1
    gate = (summary.get("gate") or {}).get("reason", "gate not run")
    export = next(s for s in summary["steps"] if s["name"] == "export")
    if export["status"].startswith("reused"):
        gate = f"{gate} ({export['status']}, from an earlier run of this day)"
    print(f"daily dt={day}: succeeded in {summary['seconds']:.1f} s; {gate}; "
          f"recommendations from version {summary['version']}; summary: {where}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
