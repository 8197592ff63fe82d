"""`python -m batch --config FILE [--dt YYYY-MM-DD] [--version N]`: Spark top-K scoring.

Scores every user of the latest (or given) version of `batch.model` (default `model.name`)
against every item or the `batch.candidates`, and writes the top `batch.k` per user to
`<batch.output>/dt=<dt>/`.  Problems the user can fix end with one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt_
import json
import sys
import time

__all__ = ["main"]


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m batch", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml", help="pipeline YAML config")
    parser.add_argument(
        "--dt",
        default=dt_.datetime.now(dt_.timezone.utc).date().isoformat(),
        help="partition date of the output (default: today, UTC)",
    )
    parser.add_argument("--version", type=int, help="model version (default: the latest)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the batch job; 0 on success, 2 on a bad config, model or input."""
    args = _parse_args(argv)
    start = time.perf_counter()
    from peppercorn.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from pyspark.errors.exceptions.base import PySparkException
    from pyspark.sql import SparkSession

    from batch.errors import BatchError, error_line
    from batch.job import run
    from peppercorn.spark import get_spark

    owned = SparkSession.getActiveSession() is None
    spark = get_spark(cfg.spark, app_name=f"{cfg.spark.app_name}-batch")
    try:
        summary = run(cfg, spark, args.dt, args.version)
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PySparkException as exc:
        print(f"error: batch scoring failed: {error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        if owned:
            spark.stop()
    summary["wall_seconds"] = round(time.perf_counter() - start, 3)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
