"""`python -m features --config FILE`: run only the features stage on existing clean data."""

from __future__ import annotations

import argparse
import json
import sys

from features.job import run
from features.source import FeaturesError
from peppercorn.config import ConfigError, load_config
from peppercorn.spark import get_spark


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the stage, print its summary as JSON; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m features", description=__doc__)
    parser.add_argument("--config", required=True, help="pipeline YAML config")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        spark = get_spark(cfg.spark, app_name=f"{cfg.spark.app_name}-features")
        summary = run(cfg, spark)
    except (ConfigError, FeaturesError) as exc:
        print(f"features: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
