"""Platform benchmark (issue #15 item 6): the whole chain at 10M and 50M synthetic events.

Run with ``python -m bench.platform`` (``make bench-platform``; about an hour on 2 cores).
For each ``--events`` size it writes a config derived from ``--config`` (that event count,
its own data root and model repository under ``--work-dir``, ``training.epochs`` =
``--epochs``) and runs, each as a fresh subprocess of the pipeline's CLI:

1. ``python -m pipeline generate``: the synthetic raw logs;
2. ``python -m pipeline etl --skip-features``: raw -> clean tables;
3. ``python -m pipeline features``: clean tables -> features;
4. ``python -m pipeline train``: the epochs, evaluation (sampled and full-catalogue, with
   the popularity baseline) and the export of a version; its phases are split by when the
   process printed its ``epoch N:`` and ``export: S s`` lines.

Each gets wall time, events/s (raw events / wall s) and the peak RSS of its process tree
(driver, JVM, PySpark workers; psutil every ``--interval`` s). ``platform.json`` and
``platform.md`` under ``--out-dir`` are rewritten after every stage, so an interrupted run
keeps what it measured. Each size's data is deleted once measured unless ``--keep``;
``--reuse-raw`` keeps and reuses raw logs already generated with the same parameters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import yaml

from bench.engine_machine import cpu_model
from bench.platform_report import (
    derive_config,
    markdown,
    parse_stage,
    ratios,
    size_rows,
    tree_total,
)

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("generate", "etl", "features", "train")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.platform", description=__doc__)
    parser.add_argument("--events", type=int, nargs="+", default=[10_000_000, 50_000_000])
    parser.add_argument("--config", type=Path, default=Path("configs/platform.yaml"))
    parser.add_argument("--work-dir", type=Path, default=Path("data/bench-platform"))
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--epochs", type=int, default=1, help="training.epochs (item 6: one)")
    parser.add_argument("--users", type=int, help="override dataset.synthetic.users (smoke runs)")
    parser.add_argument("--items", type=int, help="override dataset.synthetic.items (smoke runs)")
    parser.add_argument("--keep", action="store_true", help="keep each size's data afterwards")
    parser.add_argument("--reuse-raw", action="store_true",
                        help="skip generate when matching raw logs exist; keep them")  # fmt: skip
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling period, s")
    return parser.parse_args(argv)


def _tree_rss(root: psutil.Process) -> int:
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    rss: dict[int, int] = {}
    parents: dict[int, int] = {}
    for member in members:
        try:
            rss[member.pid], parents[member.pid] = member.memory_info().rss, member.ppid()
        except psutil.Error:  # a worker that ended between listing and reading
            continue
    return tree_total(rss, parents)


def measure(cmd: list[str], log: Path, interval: float) -> dict:
    """Run `cmd`: wall seconds, peak tree RSS, its stdout lines with the second each arrived,
    and the RSS samples. Stderr (Spark's log, progress bars) goes to `log`, not to a pipe
    nobody reads, which would stall a long run once its buffer filled."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines arrive when printed: phases need it
    lines: list[list] = []
    samples: list[list[float]] = []
    began = time.monotonic()
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=env)  # fmt: skip

        def read() -> None:
            for line in proc.stdout:
                lines.append([round(time.monotonic() - began, 2), line.rstrip("\n")])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            samples.append([round(time.monotonic() - began, 2), _tree_rss(root) / 2**20])
            time.sleep(interval)
        reader.join()
    seconds = time.monotonic() - began
    with log.open("a") as err:
        err.write("\n---- stdout ----\n" + "\n".join(line for _, line in lines) + "\n")
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); {log}:\n{tail}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": int(max((rss for _, rss in samples), default=0)),
        "lines": lines,
        "samples": [[t, int(rss)] for t, rss in samples],
    }


def _machine() -> dict:
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))  # fmt: skip
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": round(kib / 2**20, 1)}


def _git() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    return {"commit": git("rev-parse", "HEAD").strip() or "unknown", "dirty": dirty}


def _raw_is_current(cfg: dict, root: Path) -> bool:
    # The same check as datagen.stale_reason on the parameters that decide the rows; etl's
    # raw() still checks every parameter and regenerates (flagged in the table) if needed.
    marker = root / "data" / cfg["dataset"]["name"] / "raw" / "_SUCCESS.json"
    if not marker.exists():
        return False
    written = json.loads(marker.read_text()).get("parameters", {})
    wanted = cfg["dataset"]["synthetic"]
    return all(written.get(k) == wanted.get(k) for k in ("events", "users", "items", "seed"))


def _quality(metrics: dict) -> dict:
    keys = ("full_recall@50", "popularity_full_recall@50", "full_ndcg@50",
            "popularity_full_ndcg@50", "full_recall@10", "popularity_full_recall@10",
            "hr@10", "popularity_hr@10", "ndcg@10", "full_users", "full_eval_seconds",
            "train_seconds", "train_samples_per_sec", "epochs")  # fmt: skip
    return {k: metrics[k] for k in keys if k in metrics}


def _command(stage: str, config: Path) -> list[str]:
    args = {"etl": ["etl", "--skip-features"]}.get(stage, [stage])
    return [sys.executable, "-m", "pipeline", *args, "--config", str(config)]


def _run_size(args, base: dict, events: int, size: dict, save) -> None:
    root = (args.work_dir if args.work_dir.is_absolute() else ROOT / args.work_dir) / str(events)
    root.mkdir(parents=True, exist_ok=True)
    cfg = derive_config(base, events, root, args.epochs, args.users, args.items)
    config = root / "config.yaml"
    config.write_text(f"# derived from {args.config} by bench/platform.py\n"
                      + yaml.safe_dump(cfg, sort_keys=False))  # fmt: skip
    from peppercorn.config import load_config

    load_config(config)  # a bad override fails here, not an hour in
    size["config"] = str(config)
    for stage in STAGES:
        if stage == "generate" and args.reuse_raw and _raw_is_current(cfg, root):
            size["stages"][stage] = {"seconds": 0.0, "peak_rss_mb": 0, "reused": True}
            continue
        before = round(os.getloadavg()[0], 1)
        run = measure(_command(stage, config), root / f"{stage}.log", args.interval)
        run["load_average"] = [before, round(os.getloadavg()[0], 1)]
        run["printed"] = parse_stage(stage, [line for _, line in run["lines"]])
        size["stages"][stage] = run
        if stage == "train":
            size["quality"] = _quality(run["printed"].get("metrics") or {})
        size["rows"] = size_rows(size, args.interval)
        save()
        print(f"{events:,} events: {stage} {run['seconds']:.1f} s, peak "
              f"{run['peak_rss_mb']} MiB", flush=True)  # fmt: skip
    if not args.keep:
        _clean(root, cfg["dataset"]["name"], args.reuse_raw)


def _clean(root: Path, dataset: str, keep_raw: bool) -> None:
    # Raw logs are the slowest thing to remake, so --reuse-raw keeps them for the next run.
    if not keep_raw:
        shutil.rmtree(root, ignore_errors=True)
        return
    shutil.rmtree(root / "models", ignore_errors=True)
    for child in (root / "data" / dataset).glob("*"):
        if child.name != "raw":
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()


def _notes(args, base: dict) -> list[str]:
    config_epochs = base.get("training", {}).get("epochs")
    return [
        "`make etl` runs generate (when the logs are missing), ETL and features in one "
        "process; here they are three, so the `make etl (etl + features)` row carries one "
        "Spark start-up more than `make etl` on existing logs and is the conservative figure.",
        f"The train command runs training.epochs = {args.epochs} (`--epochs`); "
        f"{args.config} itself trains {config_epochs}, so with `--epochs {config_epochs}` the "
        "whole chain is `make etl train` on that config. `train: epochs` includes the sampled "
        "validation and "
        "the checkpoint; `train: evaluation` is the best weights restored, sampled test "
        "metrics and the full-catalogue ranking of model and popularity (full_eval_seconds: "
        "the model's ranking alone).",
        "Stage logs (stderr, then stdout) are in each size's work dir as <stage>.log; "
        "platform.json keeps every RSS sample and stdout line with its time.",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write platform.json and platform.md."""
    args = _parse_args(argv)
    base = yaml.safe_load((ROOT / args.config).read_text())
    overrides = "".join(f", {k} {v}" for k, v in (("users", args.users), ("items", args.items))
                        if v is not None)  # fmt: skip
    report = {
        "benchmark": "generate, etl, features, train (epochs, evaluation, export) per size",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git": _git(),
        "machine": _machine(),
        "config": str(args.config),
        "overrides": overrides,
        "epochs": args.epochs,
        "interval_s": args.interval,
        "sizes": [],
        "notes": _notes(args, base),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        report["ratios"] = ratios(report["sizes"])
        (args.out_dir / "platform.json").write_text(json.dumps(report, indent=1) + "\n")
        (args.out_dir / "platform.md").write_text(markdown(report))

    for events in args.events:
        size = {"events": events, "stages": {}, "rows": []}
        report["sizes"].append(size)
        try:
            _run_size(args, base, events, size, save)
        except (RuntimeError, ValueError) as exc:  # a failed stage: keep what was measured
            size["error"] = str(exc).splitlines()[0]
            save()
            print(f"error: {exc}", file=sys.stderr)
            return 1
    save()
    print((args.out_dir / "platform.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
