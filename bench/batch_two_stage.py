"""Batch top-K through the two-stage chain at the platform size (issue #16 item 5).

``python -m bench.batch_two_stage`` publishes a two-tower and a neumf version with random
weights over 1M users x 100k items (``bench.two_stage_models``; latency depends on the shapes,
not on the weights) and measures, each in a fresh process:

1. ``python -m pipeline batch`` on ``local[*]`` with ``serving.recommend`` = two_tower ->
   neumf, 200 candidates, k = 10: wall time (Spark start-up, loading both versions in every
   worker and the Parquet write included), users/s and the peak RSS of its process tree
   (driver, JVM, Python workers; psutil every ``--interval`` s). Target: 30 min.
2. One core: the batched chain (``peppercorn.two_stage.chain_top_k``, as a Spark worker runs
   it) on ``--sample-users`` users spread over the vocabulary: seconds per stage, so the
   retrieval / ranking split is known.
3. One core: the ranker over the whole catalogue (``LoadedVersion.top_k``, the one-stage batch)
   for ``--full-users`` users, extrapolated to every user: the users x items scores the chain
   replaces.

At a reduced ``--users`` / ``--items`` the report also projects the platform size from the
measured per-stage costs (exact retrieval grows with the items, the rest does not).
Results: ``bench/results/batch_two_stage.{json,md}`` (``--out-dir``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.engine_machine import cpu_model

__all__ = ["main", "sample"]

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_USERS, PLATFORM_ITEMS = 1_000_000, 100_000
TARGET_MINUTES = 30.0
DAY = "2026-12-01"
_ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.batch_two_stage", description=__doc__)
    parser.add_argument("--users", type=int, default=PLATFORM_USERS)
    parser.add_argument("--items", type=int, default=PLATFORM_ITEMS)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--sample-users", type=int, default=10_000)
    parser.add_argument("--full-users", type=int, default=20)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "bench-batch-two-stage")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling period, s")
    parser.add_argument("--keep", action="store_true", help="keep the versions and the output")
    parser.add_argument("--sample", type=Path, help=argparse.SUPPRESS)  # internal: step 2-3
    return parser.parse_args(argv)


def sample(repository: Path, k: int, candidates: int, users: int, full_users: int) -> dict:
    """Steps 2 and 3 in this process (run it with one BLAS thread): seconds per stage of the
    chain over `users` users, and of the whole-catalogue ranking of `full_users` users."""
    import numpy as np

    from batch.scoring import search_in_batches
    from peppercorn.model_repository import ModelRepository
    from peppercorn.two_stage import chain_top_k, index_map

    search_in_batches()
    start = time.perf_counter()
    repo = ModelRepository(str(repository))
    retrieval, ranker = repo.version("two_tower").open(), repo.version("neumf").open()
    loaded = time.perf_counter() - start
    n = len(ranker.users) - 1
    chosen = np.unique(np.linspace(1, n, min(users, n)).astype(np.int32))
    mapped = index_map(ranker, retrieval, "user_id")[chosen]
    chain_top_k(retrieval, ranker, mapped[:64], chosen[:64], k, candidates)  # warm-up
    start = time.perf_counter()
    top = chain_top_k(retrieval, ranker, mapped, chosen, k, candidates)
    seconds = time.perf_counter() - start
    pool = ranker.all_items()
    start = time.perf_counter()
    for user in chosen[:full_users]:  # one user per call, as today's batch does at 100k items
        ranker.top_k(np.array([user], np.int32), pool, k)
    full = (time.perf_counter() - start) / max(1, min(full_users, chosen.size))
    return {
        "load_seconds": round(loaded, 2),
        "users": int(chosen.size),
        "seconds": round(seconds, 3),
        "users_per_s": round(chosen.size / seconds, 1),
        "stage_seconds": {s: round(v, 3) for s, v in top.timings.items()},
        "rows": int(top.rows.size),
        "full_catalogue_users": int(min(full_users, chosen.size)),
        "full_catalogue_seconds_per_user": round(full, 4),
    }


def _config(args, models: Path, out: Path) -> dict:
    return {
        "dataset": {"name": "bench-batch-two-stage"},
        "paths": {"data_root": str(args.work_dir / "data"), "model_repository": str(models)},
        "spark": {"master": args.master, "driver_memory": args.driver_memory},
        "model": {"name": "neumf"},
        "serving": {"recommend": {"retrieval": "two_tower", "ranking": "neumf",
                                  "candidates": args.candidates}},
        "batch": {"k": args.k, "output": str(out)},
    }  # fmt: skip


def _sample_process(args, models: Path) -> dict:
    cmd = [sys.executable, "-m", "bench.batch_two_stage", "--sample", str(models),
           "--k", str(args.k), "--candidates", str(args.candidates), "--sample-users",
           str(args.sample_users), "--full-users", str(args.full_users)]  # fmt: skip
    env = {**os.environ, **_ONE_THREAD, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the sample process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def project(report: dict) -> dict:
    """Core seconds per user of each stage, and the wall time at the platform size on the
    run's cores, as a range: low, the stages' core time plus the rest of the measured wall
    kept fixed (start-up, loading, writing); high, the whole measured wall scaled per user."""
    s, batch, cores = report["sample"], report["batch"], report["cores"]
    per_user = {k: v / s["users"] for k, v in s["stage_seconds"].items()}
    grow = PLATFORM_ITEMS / report["items"]  # exact search reads every item vector
    core = sum(per_user.values())
    platform_core = per_user["retrieve"] * grow + core - per_user["retrieve"]
    fixed = max(0.0, batch["seconds"] - report["users"] * core / cores)
    high = batch["seconds"] * PLATFORM_USERS / report["users"] * platform_core / core
    full_core_s = s["full_catalogue_seconds_per_user"] * report["users"]
    return {
        "core_ms_per_user": {k: round(v * 1000, 4) for k, v in per_user.items()},
        "fixed_seconds": round(fixed, 1),
        "platform_wall_minutes": [
            round((PLATFORM_USERS * platform_core / cores + fixed) / 60, 1),
            round(high / 60, 1),
        ],
        "full_catalogue_hours": round(full_core_s / cores / 3600, 2),
        "full_catalogue_platform_hours": round(
            s["full_catalogue_seconds_per_user"] * grow * PLATFORM_USERS / cores / 3600, 1
        ),
        "speedup": round(full_core_s / cores / max(batch["seconds"], 1e-9), 1),
    }


def markdown(r: dict) -> str:
    """The report as Markdown."""
    b, s, p = r["batch"], r["sample"], r["projection"]
    reduced = (r["users"], r["items"]) != (PLATFORM_USERS, PLATFORM_ITEMS)
    minutes = b["seconds"] / 60
    verdict = "meets" if minutes <= TARGET_MINUTES else "misses"
    lines = [
        "# Batch top-K through the two-stage chain",
        "",
        f"`{r['command']}` at {r['date']} ({r['git']['commit'][:10]}"
        f"{', dirty tree' if r['git']['dirty'] else ''}).",
        f"{r['users']:,} users x {r['items']:,} items, top {r['k']} of {r['candidates']} "
        f"retrieved (two_tower -> neumf, random weights){' - REDUCED SIZE' if reduced else ''}.",
        f"Machine: {r['machine']['cpu']}, {r['cores']} cores, {r['machine']['ram_gib']} GiB; "
        f"load average before / after: {r['load_before']} / {r['load_after']}.",
        f"Versions built in {r['build']['build_seconds']} s ({r['build']['sizes_mb']} MB).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| Spark batch wall ({r['master']}, fresh process) | {b['seconds']:.1f} s "
        f"({minutes:.1f} min) |",
        f"| users/s (wall) | {r['users'] / b['seconds']:,.0f} |",
        f"| peak RSS, process tree | {b['peak_rss_mb']:,} MB |",
        f"| rows written | {b['summary']['rows']:,} |",
        f"| chain on one core ({s['users']:,} users) | {s['users_per_s']:,.0f} users/s |",
    ]
    for stage, ms in p["core_ms_per_user"].items():
        share = s["stage_seconds"][stage] / max(sum(s["stage_seconds"].values()), 1e-9)
        lines.append(f"| - {stage}, core ms a user | {ms} ({share:.0%}) |")
    lines += [
        f"| whole catalogue, one core | {s['full_catalogue_seconds_per_user'] * 1000:.1f} ms a "
        f"user ({s['full_catalogue_users']} users) |",
        f"| whole catalogue for every user on {r['cores']} cores (extrapolated) | "
        f"{p['full_catalogue_hours']} h ({p['speedup']}x the chain's wall) |",
        "",
    ]
    if reduced:
        low, high = p["platform_wall_minutes"]
        lines.append(
            f"Projected at {PLATFORM_USERS:,} x {PLATFORM_ITEMS:,} on these {r['cores']} cores "
            f"(retrieval x {PLATFORM_ITEMS / r['items']:g} for the items, every stage x the "
            f"users): {low} min (the stages' core time + {p['fixed_seconds']} s of the wall kept "
            f"fixed) to {high} min (the whole wall scaled per user), against the "
            f"{TARGET_MINUTES:.0f} min target; the whole catalogue: "
            f"{p['full_catalogue_platform_hours']} h."
        )
    else:
        lines.append(f"Wall time {minutes:.1f} min: {verdict} the {TARGET_MINUTES:.0f} min target.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Build, run and measure; write the JSON and Markdown reports."""
    args = _parse_args(argv)
    if args.sample is not None:
        print(json.dumps(sample(args.sample, args.k, args.candidates, args.sample_users,
                                args.full_users)))  # fmt: skip
        return 0
    from bench.platform import measure
    from bench.two_stage_models import build_platform_versions

    models, out = args.work_dir / "models", args.work_dir / "recommendations"
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))  # fmt: skip
    report = {
        "command": " ".join(["python -m bench.batch_two_stage", *(argv or sys.argv[1:])]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git(),
        "machine": {"cpu": cpu_model(), "ram_gib": round(kib / 2**20, 1)},
        "cores": os.cpu_count(),
        "master": args.master,
        "users": args.users,
        "items": args.items,
        "k": args.k,
        "candidates": args.candidates,
        "load_before": [round(x, 1) for x in os.getloadavg()],
    }
    report["build"] = build_platform_versions(models, args.users, args.items)
    config = args.work_dir / "config.yaml"
    config.write_text(yaml.safe_dump(_config(args, models, out)))
    cmd = [sys.executable, "-m", "pipeline", "batch", "--config", str(config), "--dt", DAY]
    measured = measure(cmd, args.work_dir / "batch.log", args.interval)
    printed = "\n".join(line for _, line in measured["lines"])
    report["batch"] = {
        "seconds": measured["seconds"],
        "peak_rss_mb": measured["peak_rss_mb"],
        "summary": json.loads(printed[printed.index("{") :]),
    }
    report["sample"] = _sample_process(args, models)
    report["load_after"] = [round(x, 1) for x in os.getloadavg()]
    report["projection"] = project(report)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "batch_two_stage.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out_dir / "batch_two_stage.md").write_text(markdown(report))
    if not args.keep:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    print(markdown(report))
    return 0


def _git() -> dict:
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    return {"commit": git("rev-parse", "HEAD").strip() or "unknown", "dirty": dirty}


if __name__ == "__main__":
    sys.exit(main())
