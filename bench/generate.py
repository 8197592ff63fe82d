"""Synthetic generator benchmark: wall time of `datagen.generate` at several event counts.

Run with ``python -m bench.generate`` (default sizes: the default config's 200k events, cold
and warm, then 10M events).  Each size is generated into a temporary data root (deleted
afterwards) with one SparkSession (``local[*]``); Spark's start-up is timed separately.  Writes
``generate.json`` under ``--out-dir``.  The machine's load average is recorded next to each
figure because a busy shared machine slows every stage alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument(
        "--sizes", default="200000,200000,10000000", help="comma-separated event counts"
    )
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    parser.add_argument("--files", type=int, default=4, help="event files (Spark partitions)")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) <= 0:
        parser.error("--sizes: each event count must be positive")
    return args


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from datagen import generate
    from peppercorn.config import Config, SparkConfig
    from peppercorn.spark import get_spark

    began = time.perf_counter()
    spark = get_spark(SparkConfig(master=args.master, driver_memory="2g"), app_name="bench-gen")
    startup = time.perf_counter() - began
    runs = []
    scratch = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    try:
        for events in args.sizes:
            cfg = Config.model_validate(
                {
                    "paths": {"data_root": str(scratch)},
                    "dataset": {
                        "synthetic": {"events": events, "format": args.format, "files": args.files}
                    },
                }
            )
            load_before = os.getloadavg()[0]
            summary = generate(cfg, spark)
            events_dir = scratch / "synthetic" / "raw" / "events"
            runs.append(
                {
                    "events": events,
                    "first_in_session": not runs,  # pays for Python workers and JIT warm-up
                    "seconds": summary["seconds"],
                    "events_per_second": round(events / summary["seconds"]),
                    "event_bytes": _bytes_under(events_dir),
                    "malformed_events": summary["malformed_events"],
                    "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                }
            )
            print(json.dumps(runs[-1]))
            shutil.rmtree(scratch / "synthetic")
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "benchmark": "datagen.generate wall time (users, items, _truth, events, _SUCCESS.json)",
        "master": args.master,
        "format": args.format,
        "files": args.files,
        "spark_startup_seconds": round(startup, 2),
        "runs": runs,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "generate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out_dir / 'generate.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
