"""`python -m datagen --config FILE [--events N] [--seed S]`: write the synthetic raw logs."""

from __future__ import annotations

import argparse
import sys

from peppercorn.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datagen", description=__doc__)
    parser.add_argument("--config", required=True, help="pipeline YAML config")
    parser.add_argument("--events", type=int, help="override dataset.synthetic.events")
    parser.add_argument("--seed", type=int, help="override dataset.synthetic.seed")
    args = parser.parse_args(argv)
    overrides = {}
    if args.events is not None:
        overrides["dataset.synthetic.events"] = args.events
    if args.seed is not None:
        overrides["dataset.synthetic.seed"] = args.seed
    try:
        cfg = load_config(args.config, overrides)
        if cfg.dataset.kind != "synthetic":
            raise ConfigError(
                f"{args.config}: dataset.kind is {cfg.dataset.kind!r}; "
                "datagen only generates dataset.kind: synthetic"
            )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from datagen.job import generate
    from peppercorn.spark import get_spark

    spark = get_spark(cfg.spark, app_name="peppercorn-datagen")
    try:
        summary = generate(cfg, spark)
    finally:
        spark.stop()
    bad = summary["malformed_events"]
    print(
        f"datagen: {summary['events']} events ({bad} malformed), {summary['users']} users, "
        f"{summary['items']} rooms -> {summary['raw']} in {summary['seconds']}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
