"""Training quality and speed: every model on the MovieLens configs, one results table.

`python -m bench.train [--models gmf,mlp,...] [--configs a.yaml,b.yaml] [--seeds 0,1,2]` trains
each model on each config's features datasets (run `make etl CONFIG=...` first), once per seed
(default: the config's `training.seed`), exports a version like `make train` does, and writes
`bench/results/<out>.md` and `<out>.json` (default `quality`) with
the test metrics, the popularity baseline and the timings, plus the machine's load while
it ran (timings on a shared machine are only comparable under similar load). On the NCF split
each export is also scored on the raw `test.negative` file (`bench.ncf_check`), an independent
check of the reported figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from peppercorn.config import load_config

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
# Per dataset (config's dataset.name): the models to run and the config overrides they run
# with. The NCF split uses the settings found on its validation split (see the report).
_NCF_TRAINING = {
    "training.batch_size": 1024, "training.learning_rate": 0.003, "training.l2": 0.02,
    "training.negatives": 8, "training.epochs": 12, "training.early_stopping_patience": 3,
    "training.refit": True,
}  # fmt: skip
# The profile rankers are slower per example; fewer negatives and epochs keep them in budget.
_PROFILE_TRAINING = {
    "training.batch_size": 1024, "training.learning_rate": 0.003, "training.l2": 0.02,
    "training.negatives": 4, "training.epochs": 8, "training.early_stopping_patience": 2,
}  # fmt: skip
PLAN: dict[str, dict[str, dict]] = {
    "ml100k-ncf": {
        "seqfism": {},  # the config's model, with the config's settings
        "gmf": {"model.params": {"factors": 32, "item_bias": True}, **_NCF_TRAINING},
        "mlp": {"model.params": {"mlp_embedding": 32, "layers": [64, 32, 16]}, **_NCF_TRAINING},
        "neumf": {
            "model.params": {
                "factors": 32,
                "mlp_embedding": 32,
                "layers": [64, 32, 16],
                "item_bias": True,
            },
            **_NCF_TRAINING,
        },  # fmt: skip
    },
    "ml100k": {
        name: {"model.params": {"embedding": 16, "layers": [64, 32]}, **_PROFILE_TRAINING}
        for name in ("ranker", "wide_deep", "deepfm")
    },
}
DEFAULT_CONFIGS = "configs/ml100k-ncf.yaml,configs/ml100k.yaml"


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _table(rows: list[dict]) -> str:
    head = (
        "| dataset | model | optimizer | seed | HR@10 | NDCG@10 | AUC | popularity HR@10 / "
        "NDCG@10 | best epoch | train s | samples/s | load avg |\n" + "|---" * 12 + "|"
    )
    lines = [head]
    for r in rows:
        m = r["metrics"]
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r.get('optimizer', '?')} | {r['seed']} | "
            f"{m['hr@10']:.3f} | {m['ndcg@10']:.3f} | "
            f"{m['auc']:.3f} | {m['popularity_hr@10']:.3f} / {m['popularity_ndcg@10']:.3f} | "
            f"{m['best_epoch']}/{m['epochs']} | {m['train_seconds']:.0f} | "
            f"{m['train_samples_per_sec']:.0f} | {r['load_before']} → {r['load_after']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bench.ncf_check import score_raw_test
    from pipeline.stages import train_and_export

    parser = argparse.ArgumentParser(prog="python -m bench.train")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--seeds", default="", help="comma-separated training seeds")
    parser.add_argument("--out", default="quality", help="results file stem under bench/results")
    args = parser.parse_args(argv)
    wanted = {m for m in args.models.split(",") if m}
    seeds = [int(s) for s in args.seeds.split(",") if s] or [None]
    rows = []
    for config in args.configs.split(","):
        dataset = load_config(config).dataset.name
        for model, overrides in PLAN.get(dataset, {}).items():
            if wanted and model not in wanted:
                continue
            for seed in seeds:
                seeded = {} if seed is None else {"training.seed": seed}
                cfg = load_config(config, {"model.name": model, **overrides, **seeded})
                load_before, start = _load_average(), time.perf_counter()
                version, metrics = train_and_export(cfg, source="bench.train")
                rows.append({
                    "config": config, "dataset": dataset, "model": model, "export": version.uri,
                    "seed": cfg.training.seed, "optimizer": cfg.training.optimizer,
                    "metrics": metrics, "wall_seconds": round(time.perf_counter() - start, 1),
                    "load_before": load_before, "load_after": _load_average(),
                })  # fmt: skip
                hr, ndcg = metrics["hr@10"], metrics["ndcg@10"]
                print(f"{config} {model} ({cfg.training.optimizer}) seed {cfg.training.seed}: "
                      f"HR@10 {hr:.4f} "
                      f"NDCG@10 {ndcg:.4f}", flush=True)  # fmt: skip
                if cfg.dataset.kind == "ncf":
                    raw = score_raw_test(version, Path(cfg.dataset.path))
                    rows[-1]["raw_file_check"] = raw
                    print(f"  the export on the raw test.negative: HR@10 {raw['hr@10']:.4f} "
                          f"NDCG@10 {raw['ndcg@10']:.4f}", flush=True)  # fmt: skip
    if not rows:
        print("nothing to run: check --configs/--models", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"machine": machine, "runs": rows}, indent=1)
    )
    text = (
        "# Training quality (test split, NCF protocol: held-out item vs its 99 negatives)\n\n"
        f"Machine: {machine}. Written by `python -m bench.train`.\n\n{_table(rows)}\n"
    )
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
