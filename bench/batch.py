"""Batch scoring wall time: `python -m batch` as a fresh subprocess, Spark start-up included.

`python -m bench.batch [--config configs/ml100k.yaml] [--repeats 3]` scores every user of the
config's latest model version against every item (ML-100K: 943 x 1682 = about 1.6M pairs),
and writes `bench/results/batch.json` and `bench/results/batch.md` with each repeat's wall
time, the job's own scoring time, the pairs per second and the machine's load average (on a
shared machine timings are only comparable under similar load).  Needs a trained model:
`make etl train CONFIG=configs/ml100k.yaml` first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 30.0


def _one_run(config: str, day: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "batch", "--config", config, "--dt", day],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench.batch: the batch command failed: {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(proc.stdout[proc.stdout.index("{") :])
    return {"wall_seconds": round(wall, 2), "job_seconds": summary["seconds"], **summary}


def _markdown(result: dict) -> str:
    lines = [
        "# Batch scoring benchmark",
        "",
        f"`python -m pipeline batch --config {result['config']}` as a fresh subprocess (Spark "
        "start-up, "
        f"model load and Parquet write included); {result['users']} users x "
        f"{result['items']} items = {result['pairs']:,} pairs, top {result['k']}.",
        f"Machine: {result['machine']}; load average before/after: "
        f"{result['load_before']} / {result['load_after']}.",
        "",
        "| run | wall s | job s (after Spark start-up) | pairs/s (wall) |",
        "|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        lines.append(
            f"| {i} | {r['wall_seconds']:.1f} | {r['job_seconds']:.1f} | "
            f"{result['pairs'] / r['wall_seconds']:,.0f} |"
        )
    best = min(r["wall_seconds"] for r in result["runs"])
    verdict = "meets" if best <= TARGET_SECONDS else "misses"
    lines += ["", f"Best wall time {best:.1f} s: {verdict} the {TARGET_SECONDS:.0f} s target."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default="configs/ml100k.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dt", default="2000-01-01", help="output partition used by the bench")
    args = parser.parse_args(argv)
    from peppercorn.config import load_config
    from peppercorn.model_repository import ModelRepository

    cfg = load_config(args.config)
    repository = ModelRepository(cfg.paths.model_repository)
    version = repository.version(cfg.batch.model or cfg.model.name)
    loaded = version.open()
    n_users, n_items = len(loaded.users), len(loaded.items)
    load_before = [round(x, 1) for x in os.getloadavg()]
    runs = [_one_run(args.config, args.dt) for _ in range(args.repeats)]
    result = {
        "config": args.config,
        "model": version.name,
        "version": version.version,
        "users": n_users - 1,
        "items": n_items - 1,
        "pairs": (n_users - 1) * (n_items - 1),
        "k": cfg.batch.k,
        "spark_master": cfg.spark.master,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "load_before": load_before,
        "load_after": [round(x, 1) for x in os.getloadavg()],
        "runs": runs,
        "best_wall_seconds": min(r["wall_seconds"] for r in runs),
        "target_seconds": TARGET_SECONDS,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "batch.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "batch.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
