"""Training quality and speed: every model on the MovieLens configs, one results table.

`python -m bench.train [--models gmf,mlp,...] [--configs a.yaml,b.yaml] [--seeds 0,1,2]` trains
each model on each config's features datasets (run `make etl CONFIG=...` first), once per seed
(default: the config's `training.seed`), exports a version like `make train` does (a tracked
run with source `bench.train`), and writes `bench/results/<out>.md` and `<out>.json` (default
`quality-latest`) with the test metrics, the popularity baseline and the timings, plus the
machine's load while it ran (timings on a shared machine are only comparable under similar
load). On the NCF split each export is also scored on the raw `test.negative` file
(`bench.ncf_check`), an independent check of the reported figures. The load and that check are
added to the tracked run (`run/load_before`, `run/load_after`, `raw_check/hr_at_10`, ...);
the table is `bench.report.runs_markdown`'s, the writer of every quality table, and
`python -m bench.report` then rewrites the README's tables from the store.
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
        "fism": {
            "model.params": {"factors": 32, "alpha": 1.0},
            **_NCF_TRAINING,
            "training.l2": 0.01,
        },  # fmt: skip
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


def _annotate(cfg, version, figures: dict[str, float]) -> str | None:
    """Add `figures` (load averages, the raw-file check) to the tracked run that exported
    `version`; returns its run id (None when tracking is off or the run is not found)."""
    from peppercorn.tracking.store import TrackingTarget

    target = TrackingTarget.from_config(cfg)
    if not target.enabled or not target.exists():
        return None
    try:
        from mlflow.entities import Metric

        client = target.client()
        experiment = client.get_experiment_by_name(target.experiment)
        found = client.search_runs(
            [experiment.experiment_id],
            f"tags.`peppercorn.version_uri` = '{version.uri}' and "
            "tags.`peppercorn.source` = 'bench.train'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )  # fmt: skip
        if not found:
            return None
        run_id, now = found[0].info.run_id, int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in figures.items()]
        client.log_batch(run_id, metrics=metrics)
        return run_id
    except Exception as exc:  # a store problem must not lose the benchmark's own results
        print(f"  could not add the load and check figures to the tracked run: {exc}")
        return None


def _untracked(row: dict, cfg, figures: dict[str, float]):
    """A row as a `TrackedRun` with no run id (tracking off), for the one table writer."""
    from peppercorn.tracking.runs import SOURCE_TAG, TrackedRun, final_metrics
    from training.models import resolve_params

    params = {"model.name": cfg.model.name, "data.checksum": row["metrics"].get("dataset_checksum")}
    params |= {
        f"model.params.{k}": v for k, v in resolve_params(cfg.model.name, cfg.model.params).items()
    }
    params |= {f"training.{k}": v for k, v in cfg.training.model_dump(mode="json").items()}
    params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    tags = {SOURCE_TAG: "bench.train", "peppercorn.model": cfg.model.name,
            "peppercorn.version": str(row["export"].rsplit("/", 1)[-1])}  # fmt: skip
    return TrackedRun("", row["dataset"], "", "FINISHED", int(time.time() * 1000), params,
                      {**final_metrics(row["metrics"]), **figures}, tags)  # fmt: skip


def _records(rows: list[dict], untracked: list) -> list[dict]:
    """The table's records: each row's tracked run as the store holds it, else its own."""
    from bench.report import run_record
    from peppercorn.tracking.runs import read_runs
    from peppercorn.tracking.store import TrackingTarget

    stored: dict[str, object] = {}
    for config in {row["config"] for row in rows if row.get("run_id")}:
        target = TrackingTarget.from_config(load_config(config))
        stored |= {run.run_id: run for run in read_runs(target)}
    return [run_record(stored.get(row.get("run_id") or "", fallback))
            for row, fallback in zip(rows, untracked, strict=True)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from bench.ncf_check import score_raw_test
    from bench.report import runs_markdown
    from pipeline.stages import train_and_export

    parser = argparse.ArgumentParser(prog="python -m bench.train")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    parser.add_argument("--models", default="", help="comma-separated subset (default: all)")
    parser.add_argument("--seeds", default="", help="comma-separated training seeds")
    parser.add_argument("--out", default="quality-latest", help="file stem under bench/results")
    args = parser.parse_args(argv)
    wanted = {m for m in args.models.split(",") if m}
    seeds = [int(s) for s in args.seeds.split(",") if s] or [None]
    rows, untracked = [], []
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
                row = {
                    "config": config, "dataset": dataset, "model": model, "export": version.uri,
                    "seed": cfg.training.seed, "optimizer": cfg.training.optimizer,
                    "metrics": metrics, "wall_seconds": round(time.perf_counter() - start, 1),
                    "load_before": load_before, "load_after": _load_average(),
                }  # fmt: skip
                hr, ndcg = metrics["hr@10"], metrics["ndcg@10"]
                print(f"{config} {model} ({cfg.training.optimizer}) seed {cfg.training.seed}: "
                      f"HR@10 {hr:.4f} NDCG@10 {ndcg:.4f}", flush=True)  # fmt: skip
                figures = {"run/load_before": row["load_before"],
                           "run/load_after": row["load_after"]}  # fmt: skip
                if cfg.dataset.kind == "ncf":
                    raw = score_raw_test(version, Path(cfg.dataset.path))
                    row["raw_file_check"] = raw
                    figures |= {"raw_check/hr_at_10": raw["hr@10"],
                                "raw_check/ndcg_at_10": raw["ndcg@10"]}  # fmt: skip
                    print(f"  the export on the raw test.negative: HR@10 {raw['hr@10']:.4f} "
                          f"NDCG@10 {raw['ndcg@10']:.4f}", flush=True)  # fmt: skip
                row["run_id"] = _annotate(cfg, version, figures)
                rows.append(row)
                untracked.append(_untracked(row, cfg, figures))
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
        f"Machine: {machine}. Written by `python -m bench.train` (run: the tracked run's id, "
        "first 8 characters; `python -m bench.report` rewrites the README's tables from the "
        "store). Times are from a machine shared with other jobs (load avg: 1-minute load "
        f"before → after each run).\n\n{runs_markdown(_records(rows, untracked))}\n"
    )
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
