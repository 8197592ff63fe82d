"""ETL benchmark: `python -m pipeline etl` end to end (ETL + features) as a fresh subprocess.

Run with ``python -m bench.etl`` (``make bench-etl``).  Measures, for ML-100K (from
``../shared/datasets/ml-100k``) and for synthetic logs of each ``--sizes`` event count:
wall time of ``python -m pipeline etl --config ...`` including Spark start-up, the ETL and
features stages' own seconds (as the CLI reports them), and peak memory.

Memory is sampled with psutil every ``--interval`` seconds over the subprocess's tree:
``driver_peak_rss_mb`` is the largest sum of RSS of the driver Python process and its JVM
(in local mode the JVM also runs the executor threads); ``tree_peak_rss_mb`` adds the
PySpark Python workers.  Synthetic raw logs are generated first (``python -m pipeline
generate``, timed separately, not part of the ETL figure).  Outputs go to a temporary data
root that is deleted afterwards.  Writes ``etl.json`` and ``etl.md`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.etl", description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000", help="synthetic event counts")
    parser.add_argument("--skip-ml100k", action="store_true")
    parser.add_argument("--skip-features", action="store_true", help="time the ETL stage alone")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling period")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--append", action="store_true", help="keep other datasets' runs from an earlier etl.json"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="data root (temp default)")
    return parser.parse_args(argv)


def _measure(cmd: list[str], interval: float) -> dict:
    """Run `cmd`; wall seconds, peak RSS (driver = python + JVM; tree = all), stdout."""
    began = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = psutil.Process(proc.pid)
    driver_peak = tree_peak = 0
    out_chunks: list[str] = []
    while proc.poll() is None:
        driver = tree = 0
        try:
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        for member in members:
            try:
                rss = member.memory_info().rss
                name = member.name()
            except psutil.Error:
                continue
            tree += rss
            if member.pid == root.pid or name == "java":
                driver += rss
        driver_peak, tree_peak = max(driver_peak, driver), max(tree_peak, tree)
        time.sleep(interval)
    stdout, stderr = proc.communicate()
    out_chunks.append(stdout)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "driver_peak_rss_mb": round(driver_peak / 2**20),
        "tree_peak_rss_mb": round(tree_peak / 2**20),
        "stdout": "".join(out_chunks),
    }


def _stage_seconds(stdout: str) -> dict:
    found = {}
    for stage in ("etl", "features"):
        match = re.search(rf"^{stage}: ([0-9.]+) s$", stdout, re.M)
        if match:
            found[f"{stage}_seconds"] = float(match.group(1))
    match = re.search(r"^events: read (\d+), kept (\d+)", stdout, re.M)
    if match:
        found["events_read"], found["events_kept"] = int(match.group(1)), int(match.group(2))
    return found


def _config(path: Path, base: dict, data_root: Path, master: str, memory: str) -> Path:
    body = copy.deepcopy(base)
    body.setdefault("paths", {})["data_root"] = str(data_root)
    body.setdefault("spark", {}).update({"master": master, "driver_memory": memory})
    path.write_text(yaml.safe_dump(body))
    return path


def _ml100k(args, work: Path) -> dict:
    base = yaml.safe_load((ROOT / "configs" / "ml100k.yaml").read_text())
    base["dataset"]["path"] = str(ML100K)
    cfg = _config(work / "ml100k.yaml", base, work / "data", args.master, args.driver_memory)
    run = _measure(_etl_command(cfg, args), args.interval)
    stages = _stage_seconds(run["stdout"])
    return {"dataset": "ml-100k" + _suffix(args), **stages, **_without_stdout(run)}


def _synthetic(args, work: Path, events: int) -> dict:
    base = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    base["dataset"]["name"] = f"bench{events}"
    base["dataset"]["synthetic"]["events"] = events
    cfg = _config(work / f"syn{events}.yaml", base, work / "data", args.master,
                  args.driver_memory)  # fmt: skip
    generate = [sys.executable, "-m", "pipeline", "generate", "--config", str(cfg)]
    gen = _measure(generate, args.interval)
    run = _measure(_etl_command(cfg, args), args.interval)
    shutil.rmtree(work / "data" / f"bench{events}", ignore_errors=True)
    return {
        "dataset": f"synthetic-{events}{_suffix(args)}",
        "events": events,
        "generate_seconds": gen["seconds"],
        **_stage_seconds(run["stdout"]),
        **_without_stdout(run),
    }


def _etl_command(cfg: Path, args) -> list[str]:
    extra = ["--skip-features"] if args.skip_features else []
    return [sys.executable, "-m", "pipeline", "etl", "--config", str(cfg), *extra]


def _suffix(args) -> str:
    return " (etl only)" if args.skip_features else ""


def _without_stdout(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "stdout"}


def _markdown(report: dict) -> str:
    lines = [
        "# ETL benchmark (`python -m bench.etl`)",
        "",
        f"Machine: {report['cpus']} CPUs, master `{report['master']}`, driver memory "
        f"{report['driver_memory']}; load average before/after each run shown (shared machine).",
        "Wall time is a fresh `python -m etl` subprocess: Spark start-up + ETL + features "
        "(ETL alone for rows marked 'etl only'); synthetic raw logs are generated beforehand "
        "(timed separately: generate_seconds in etl.json).",
        "Driver RSS = driver Python + its JVM (local mode: executors run inside that JVM); "
        "tree RSS adds PySpark's Python workers. Sampled every "
        f"{report['interval_s']} s with psutil.",
        "",
        "| dataset | events read | wall s | etl s | features s | driver peak MB "
        "| tree peak MB | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['dataset']} | {r.get('events_read', '')} | {r['seconds']} "
            f"| {r.get('etl_seconds', '')} | {r.get('features_seconds', '')} "
            f"| {r['driver_peak_rss_mb']} | {r['tree_peak_rss_mb']} | {r['load_average']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = _parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-etl-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "python -m etl (ETL + features unless 'etl only') as a fresh subprocess",
        "cpus": os.cpu_count(),
        "master": args.master,
        "driver_memory": args.driver_memory,
        "interval_s": args.interval,
        "runs": [],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    previous = args.out_dir / "etl.json"
    if args.append and previous.exists():
        report["runs"] = json.loads(previous.read_text())["runs"]
    jobs = [] if args.skip_ml100k else [lambda: _ml100k(args, work)]
    for size in (int(s) for s in args.sizes.split(",") if s):
        jobs.append(lambda size=size: _synthetic(args, work, size))
    try:
        for job in jobs:
            load_before = round(os.getloadavg()[0], 1)
            result = job()
            result["load_average"] = [load_before, round(os.getloadavg()[0], 1)]
            report["runs"] = [r for r in report["runs"] if r["dataset"] != result["dataset"]]
            report["runs"].append(result)
            print(json.dumps(result), flush=True)
            # Written after every run, so an interrupted benchmark keeps what it measured.
            (args.out_dir / "etl.json").write_text(json.dumps(report, indent=2) + "\n")
            (args.out_dir / "etl.md").write_text(_markdown(report))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
