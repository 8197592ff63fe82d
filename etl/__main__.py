"""`python -m etl --config FILE [--skip-features] [--regenerate]`: raw → clean → features.

For a synthetic dataset the raw logs are generated first when absent, when written by
another generator version or other `dataset.synthetic` parameters, or with --regenerate.
Problems with the config or the input end the run with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import time

from pyspark.errors.exceptions.captured import CapturedException

from etl.job import EtlError, raw_uri, run
from etl.lines import EtlInputError
from peppercorn.config import Config, ConfigError, load_config

__all__ = ["main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m etl", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml", help="pipeline YAML config")
    parser.add_argument("--skip-features", action="store_true", help="stop after the ETL")
    parser.add_argument(
        "--regenerate", action="store_true", help="regenerate synthetic raw logs first"
    )
    return parser.parse_args(argv)


def _generate_if_needed(cfg: Config, spark, regenerate: bool) -> None:
    if cfg.dataset.kind != "synthetic":
        return
    import datagen

    reason = "--regenerate" if regenerate else datagen.stale_reason(cfg, spark)
    if reason is None:
        return
    print(f"generating synthetic raw logs into {raw_uri(cfg)} ({reason}) ...", flush=True)
    datagen.generate(cfg, spark)


def _features(cfg: Config, spark) -> dict | None:
    import features

    features_run = getattr(features, "run", None)
    if features_run is None:
        print("features: skipped, the features package has no run() yet", file=sys.stderr)
        return None
    try:
        return features_run(cfg, spark)
    except getattr(features, "FeaturesError", ()) as exc:
        raise _StageError(f"features: {exc}") from None


class _StageError(Exception):
    """A later stage's own input error, already worded for the user."""


def _report(etl: dict, feats: dict | None, seconds: float) -> None:
    for table, s in etl["tables"].items():
        quarantined = ", ".join(f"{k} {v}" for k, v in s["quarantined"].items()) or "none"
        print(f"{table}: read {s['read']}, kept {s['kept']}, quarantined: {quarantined}")
    rows = ", ".join(f"{name} {n}" for name, n in etl["rows"].items())
    print(f"clean rows written: {rows}")
    print(f"clean data: {etl['output']}")
    print(f"etl: {etl['seconds']:.1f} s")
    if feats is not None:
        counts = feats.get("counts") if isinstance(feats, dict) else None
        print(f"features: {counts if counts is not None else feats}")
        print(f"features: {etl['features_seconds']:.1f} s")
    print(f"done in {seconds:.1f} s (Spark start-up included)")


def main(argv: list[str] | None = None) -> int:
    """Run the stages; 0 on success, 2 on a bad config or input."""
    args = _parse_args(argv)
    start = time.perf_counter()
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    from peppercorn.spark import get_spark

    # A session that was already running (a notebook, a test) belongs to its caller.
    owned = SparkSession.getActiveSession() is None
    spark = get_spark(cfg.spark, app_name=f"{cfg.spark.app_name}-etl")
    try:
        _generate_if_needed(cfg, spark, args.regenerate)
        began = time.perf_counter()
        etl = run(cfg, spark)
        etl["seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        feats = None if args.skip_features else _features(cfg, spark)
        etl["features_seconds"] = time.perf_counter() - began
    except (ConfigError, EtlInputError, EtlError, _StageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CapturedException as exc:  # Spark's own errors: unreadable input, bad URIs, ...
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    finally:
        if owned:
            spark.stop()
    _report(etl, feats, time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
