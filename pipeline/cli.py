"""`python -m pipeline COMMAND [--config FILE] [options]`: the one command line of Peppercorn.

Commands: `generate`, `etl`, `features`, `train`, `batch`, `daily`, `serve` (the Makefile's
targets call them), and `alias` (a model-registry alias, which the server's label follows).
This module alone decides how a command reads its config (`--config`, default
`configs/default.yaml`; command-line options are config overrides), who owns the SparkSession
(a run stops the one it started, never a caller's), and how it ends:

- 0: done;
- 1: a daily run's step failed (the summary names it);
- 2: a problem the user can fix (config, input, missing model, bad arguments): one line
  `error: <message>` on stderr, no traceback;
- 3: another daily run holds the lock.
"""

from __future__ import annotations

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads: see peppercorn.blas

import argparse  # noqa: E402
import datetime as dt_  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from peppercorn.config import Config, ConfigError, ModelConfig, load_config  # noqa: E402
from pipeline.context import RunContext  # noqa: E402
from pipeline.errors import error_line  # noqa: E402

__all__ = ["main"]

_TODAY = dt_.datetime.now(dt_.timezone.utc).date().isoformat()


class UsageError(ValueError):
    """A command-line value the command cannot use."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: reported in one line, exit 2."""
    from batch.job import BatchError
    from etl import EtlError
    from peppercorn.fs import StorageError
    from peppercorn.loaded_version import VersionError
    from training.data import DatasetError
    from training.distributed.collective import DistributedError

    # ValueError covers ConfigError, RepositoryError, EtlInputError, FeaturesError and bad
    # model parameters; the rest are the stages' own error types.
    return (ValueError, EtlError, DatasetError, DistributedError, BatchError, VersionError,
            StorageError)  # fmt: skip


# ---- the commands: each (ctx, args) -> exit code ----------------------------------------------


def _generate(ctx: RunContext, args) -> int:
    from pipeline.stages import raw

    if ctx.cfg.dataset.kind != "synthetic":
        raise UsageError(
            f"{ctx.cfg.source}: dataset.kind is {ctx.cfg.dataset.kind!r}; "
            "generate only generates dataset.kind: synthetic"
        )
    ctx.regenerate = True
    s = raw(ctx)
    print(f"datagen: {s['events']} events ({s['malformed_events']} malformed), {s['users']} "
          f"users, {s['items']} rooms -> {s['raw']} in {s['seconds']}s")  # fmt: skip
    return 0


def _etl(ctx: RunContext, args) -> int:
    from pipeline import stages

    began = time.perf_counter()
    ctx.regenerate = args.regenerate
    chain = stages.ETL[:-1] if args.skip_features else stages.ETL
    out = stages.run_chain(ctx, chain)
    for table, s in out["etl"]["tables"].items():
        quarantined = ", ".join(f"{k} {v}" for k, v in s["quarantined"].items()) or "none"
        print(f"{table}: read {s['read']}, kept {s['kept']}, quarantined: {quarantined}")
    rows = ", ".join(f"{name} {n}" for name, n in out["etl"]["rows"].items())
    print(f"clean rows written: {rows}")
    print(f"clean data: {out['etl']['output']}")
    print(f"etl: {out['etl']['seconds']:.1f} s")
    if "features" in out:
        counts = {k: v for k, v in out["features"].items() if isinstance(v, int)}
        print(f"features: {counts}")
        print(f"features: {out['features']['seconds']:.1f} s")
    print(f"done in {time.perf_counter() - began:.1f} s (Spark start-up included)")
    return 0


def _features(ctx: RunContext, args) -> int:
    from pipeline.stages import features

    print(json.dumps(features(ctx), indent=2))
    return 0


def _train(ctx: RunContext, args) -> int:
    from pipeline import stages

    ctx.resume = args.resume
    stages.run_chain(ctx, stages.TRAIN)
    metrics = ctx.result.metrics
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    print(json.dumps(stages.plain(shown), indent=1))
    print(f"exported {ctx.exported.uri}")
    return 0


def _batch(ctx: RunContext, args) -> int:
    from pipeline.stages import batch

    ctx.day, ctx.batch_version = args.dt, args.version
    print(json.dumps(batch(ctx), indent=1))
    return 0


def _daily(ctx: RunContext, args) -> int:
    from pipeline.daily import lock_path, run_daily, summary_uri
    from pipeline.lock import LockHeld, exclusive_lock

    cfg = ctx.cfg
    try:
        day = dt_.date.fromisoformat(args.dt).isoformat()
    except ValueError:
        raise UsageError(f"--dt {args.dt!r}: expected a date like 2026-10-31") from None
    try:
        with exclusive_lock(lock_path(cfg), {"dt": day, "config": cfg.source}):
            summary = run_daily(cfg, day, args.from_step, args.retrain)
    except LockHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    where = summary_uri(cfg, day)
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


def _serve(ctx: RunContext, args) -> int:
    import logging

    import uvicorn
    from pydantic import ValidationError

    from serving.connections import uvicorn_options
    from serving.main import create_app
    from serving.memory import limit_heap_fragmentation
    from serving.settings import Settings

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        settings = Settings.from_config(ctx.cfg, host=args.host, port=args.port)
    except ValidationError as exc:
        raise UsageError(str(exc).replace("\n", "; ")) from None
    limit_heap_fragmentation()  # before the server's threads first allocate
    app = create_app(settings)  # opens the repository: a URI it cannot reach stops here
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level,
                access_log=False, **uvicorn_options(settings))  # fmt: skip
    return 0


def _alias(ctx: RunContext, args) -> int:
    """Point a registry alias at the registry version standing for a repository version (the
    server's TF Serving label of that name follows within one poll), or remove it."""
    from peppercorn.tracking.registry import canonical_repository, set_alias
    from peppercorn.tracking.store import TrackingTarget

    target, model = TrackingTarget.from_config(ctx.cfg), args.alias_model or ctx.cfg.model.name
    if not target.enabled:
        raise UsageError("tracking is off (tracking.enabled: false or PEPPERCORN_TRACKING=off): "
                         "there is no model registry to set an alias in")  # fmt: skip
    if not target.exists():
        raise UsageError(f"the model registry {target.registry_uri} does not exist yet (a "
                         "tracked training run creates it and registers its version)")  # fmt: skip
    if args.version is None and not args.delete:
        raise UsageError("alias: give the VERSION the alias names (or --delete to remove it)")
    if args.version is not None and args.version < 1:
        raise UsageError(f"alias: VERSION must be a repository version (1 or more), not "
                         f"{args.version}")  # fmt: skip
    why = target.unreachable()
    if why is not None:
        raise UsageError(why)
    from mlflow.exceptions import MlflowException

    client = target.client()
    repository = canonical_repository(ctx.repository.uri)
    try:
        if args.delete:
            return _delete_alias(client, model, args.alias)
        number = set_alias(client, model, args.alias, args.version, repository)
    except MlflowException as exc:  # a reserved alias name, a registry that refuses
        raise UsageError(f"alias {args.alias} of {model}: {exc.message}") from None
    print(f"alias {args.alias} of {model} -> registry version {number} ({model} version "
          f"{args.version} of {repository})")  # fmt: skip
    return 0


def _delete_alias(client, model: str, alias: str) -> int:
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(model).aliases or {}
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        aliases = {}
    if alias not in aliases:
        raise UsageError(f"{model} has no alias {alias} in the model registry")
    client.delete_registered_model_alias(model, alias)
    print(f"alias {alias} of {model} removed (it named registry version {aliases[alias]})")
    return 0


# ---- argument parsing and config overrides ------------------------------------------------


def _overrides(cfg: Config, args) -> None:
    """Command-line options are config overrides, so a stage sees one config."""
    if getattr(args, "events", None) is not None:
        cfg.dataset.synthetic.events = args.events
    if getattr(args, "seed", None) is not None:
        cfg.dataset.synthetic.seed = args.seed
    if getattr(args, "epochs", None) is not None:
        if args.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        cfg.training.epochs = args.epochs
    if getattr(args, "model", None) and args.model != cfg.model.name:
        cfg.model = ModelConfig(name=args.model)  # another model: its default parameters


_COMMANDS: dict[str, tuple[Callable[[RunContext, Any], int], str]] = {
    "generate": (_generate, "(re)generate the synthetic raw logs"),
    "etl": (_etl, "raw logs (generated when needed) -> clean tables -> features"),
    "features": (_features, "clean tables -> features only"),
    "train": (_train, "train, evaluate and export a model version"),
    "batch": (_batch, "Spark top-K scoring of every user"),
    "daily": (_daily, "the whole chain for one day: etl, train, gate, export, batch"),
    "serve": (_serve, "the model server (TF Serving's REST API, /predict, /recommend)"),
    "alias": (_alias, "point a model-registry alias (a served label) at a version"),
}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default="configs/default.yaml", help="pipeline YAML config")
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = {name: sub.add_parser(name, parents=[common], help=text, description=text)
         for name, (_, text) in _COMMANDS.items()}  # fmt: skip
    p["generate"].add_argument("--events", type=int, help="override dataset.synthetic.events")
    p["generate"].add_argument("--seed", type=int, help="override dataset.synthetic.seed")
    p["etl"].add_argument("--skip-features", action="store_true", help="stop after the ETL")
    p["etl"].add_argument("--regenerate", action="store_true",
                          help="regenerate synthetic raw logs even when current")  # fmt: skip
    p["train"].add_argument("--resume", action="store_true", help="continue from a checkpoint")
    p["train"].add_argument("--epochs", type=int, help="override training.epochs")
    p["train"].add_argument("--model", help="override model.name (with its default params)")
    for name in ("batch", "daily"):
        p[name].add_argument("--dt", default=_TODAY, help="the day (default: today, UTC)")
    p["batch"].add_argument("--version", type=int, help="model version (default: the latest)")
    from pipeline.daily import STEP_NAMES

    p["daily"].add_argument("--from-step", choices=STEP_NAMES, default="etl",
                            help="start the chain here (after fixing a failed step)")  # fmt: skip
    p["daily"].add_argument("--retrain", action="store_true",
                            help="train again even if this day exported a version")  # fmt: skip
    p["serve"].add_argument("--host", help="address to listen on (overrides env and config)")
    p["serve"].add_argument("--port", type=int, help="port (overrides env and config)")
    p["serve"].add_argument("--log-level", default="info")
    p["alias"].add_argument("alias", metavar="ALIAS", help="the alias (the label), e.g. canary")
    p["alias"].add_argument("version", metavar="VERSION", type=int, nargs="?",
                            help="the repository version it names")  # fmt: skip
    p["alias"].add_argument("--model", dest="alias_model", metavar="MODEL",
                            help="the registered model (default: model.name)")  # fmt: skip
    p["alias"].add_argument("--delete", action="store_true", help="remove the alias")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (see the module docstring)."""
    args = _parser().parse_args(argv)
    run, _ = _COMMANDS[args.command]
    try:
        cfg = load_config(args.config)
        _overrides(cfg, args)
    except (ConfigError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic's ValidationError of an override
        print(f"error: {args.config}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    ctx = RunContext(cfg, source=f"pipeline {args.command}")
    failed = True
    try:
        code = run(ctx, args)
        failed = code != 0
        return code
    except Exception as exc:
        from pyspark.errors.exceptions.base import PySparkException

        if isinstance(exc, PySparkException):  # Spark's own errors: unreadable input, bad URIs
            print(f"error: {error_line(exc)}", file=sys.stderr)
            return 2
        if isinstance(exc, _user_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    finally:
        ctx.close(failed=failed)
