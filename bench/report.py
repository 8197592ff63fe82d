"""Quality tables written from tracked runs, so every figure in them names the run it came from.

`python -m bench.report [--config configs/ml100k-ncf.yaml] [--tracking-uri URI] [--check]`
reads the finished runs of the config's tracking store (`peppercorn.tracking.read_runs`) and
writes `bench/results/quality_runs.md` and `.json` (every finished run, newest first, by
experiment) and the README's tables between `<!-- quality-table:<key>:begin -->` and
`<!-- quality-table:<key>:end -->`. A key is an experiment (`ml100k-ncf`: sampled figures)
or an experiment with `/full` (full-catalogue figures); each row is the newest finished
`bench.train` run of one model. `--check` writes nothing and exits 1 when a file is out of
date with the store. `bench.train` writes its own table with `runs_markdown`, the same writer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from peppercorn.tracking.names import metric_key
from peppercorn.tracking.runs import SOURCE_TAG, TrackedRun, read_runs
from peppercorn.tracking.store import TrackingTarget

__all__ = [
    "README_SOURCES",
    "ReportError",
    "main",
    "quality_tables",
    "run_record",
    "runs_files",
    "runs_markdown",
    "select_runs",
    "update_readme",
]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README_SOURCES = ("bench.train",)  # the runs the README's tables are chosen from
MARKER = re.compile(
    r"(<!-- quality-table:(?P<key>[\w.:/-]+):begin -->\n)(?P<body>.*?)(<!-- quality-table:"
    r"(?P=key):end -->)",
    re.DOTALL,
)
_FIGURES = ("hr@10", "ndcg@10", "auc", "full_recall@10", "full_ndcg@10", "full_recall@50",
            "full_ndcg@50")  # fmt: skip
_POPULAR = ("hr@10", "ndcg@10", "full_recall@10", "full_ndcg@10", "full_recall@50",
            "full_ndcg@50")  # fmt: skip
_TRAINING = {"optimizer": "", "learning_rate": "lr ", "batch_size": "batch ",
             "negatives": "neg ", "l2": "L2 "}  # fmt: skip


class ReportError(ValueError):
    """The store or the README cannot give the tables asked for; the message says why."""


def _metric(run: TrackedRun, split: str, figure: str) -> float | None:
    return run.metrics.get(metric_key(split, figure))


def _int(value: float | str | None) -> int | None:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def run_record(run: TrackedRun) -> dict:
    """One run as the tables and the JSON show it (None where the run lacks a figure)."""
    p, t = run.params, run.tags
    model_params = {k.removeprefix("model.params."): v for k, v in sorted(p.items())
                    if k.startswith("model.params.")}  # fmt: skip
    commit = t.get("mlflow.source.git.commit")
    return {
        "run_id": run.run_id,
        "run": run.run_id[:8] or "untracked",
        "experiment": run.experiment,
        "date": datetime.fromtimestamp(run.start_time / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
        "source": t.get(SOURCE_TAG, ""),
        "model": t.get("peppercorn.model") or p.get("model.name", "?"),
        "model_params": model_params,
        "training": {k: p[f"training.{k}"] for k in _TRAINING if f"training.{k}" in p},
        "refit": p.get("training.refit") == "true",
        "seed": _int(p.get("training.seed")),
        "dataset_checksum": p.get("data.checksum"),
        "test": {f: _metric(run, "test", f) for f in _FIGURES},
        "popularity": {f: _metric(run, "popularity", f) for f in _POPULAR},
        "best_epoch": _int(_metric(run, "run", "best_epoch")),
        "epochs": _int(_metric(run, "run", "epochs")),
        "train_seconds": _metric(run, "run", "train_seconds"),
        "samples_per_sec": _metric(run, "run", "train_samples_per_sec"),
        "full_users": _int(_metric(run, "run", "full_users")),
        "load": [_metric(run, "run", "load_before"), _metric(run, "run", "load_after")],
        "raw_file_check": {f: _metric(run, "raw_check", f) for f in ("hr@10", "ndcg@10")},
        "version": _int(t.get("peppercorn.version")),
        "version_uri": t.get("peppercorn.version_uri"),
        "commit": commit[:7] if commit else None,
    }


# ---- formatting ---------------------------------------------------------------------------
def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pair(a: float | None, b: float | None) -> str:
    return "–" if a is None and b is None else f"{_f(a)} / {_f(b)}"


def _count(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _epochs(r: dict) -> str:
    if r["best_epoch"] is None:
        return "–"
    refit = f" (+{r['best_epoch']} refit)" if r["refit"] else ""
    return f"{r['best_epoch']} / {r['epochs']}{refit}"


def _load(r: dict) -> str:
    before, after = r["load"]
    return "–" if before is None else f"{before:.1f} → {_f(after, 1)}"


def _model(r: dict) -> str:
    params = ", ".join(f"{k} {v}" for k, v in r["model_params"].items())
    return f"**{r['model']}**" + (f" ({params})" if params else "")


def _training(r: dict) -> str:
    parts = [f"{label}{r['training'][k]}" for k, label in _TRAINING.items() if k in r["training"]]
    return ", ".join(parts + (["refit"] if r["refit"] else []))


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _head(*names: str) -> str:
    return _row(names) + "\n" + "|---" * len(names) + "|"


def runs_markdown(records: Sequence[dict]) -> str:
    """Every record in one table (the columns of `quality_runs.md` and `bench.train`'s)."""
    lines = [_head("run", "date (UTC)", "source", "model", "optimizer", "seed", "HR@10",
                   "NDCG@10", "AUC", "full Recall@10 / NDCG@10", "best / run epochs",
                   "train s", "samples/s", "load avg", "version", "commit")]  # fmt: skip
    for r in records:
        t = r["test"]
        lines.append(_row([
            f"`{r['run']}`", r["date"], r["source"], r["model"],
            r["training"].get("optimizer", "–"), "–" if r["seed"] is None else r["seed"],
            _f(t["hr@10"]), _f(t["ndcg@10"]), _f(t["auc"]),
            _pair(t["full_recall@10"], t["full_ndcg@10"]), _epochs(r),
            _f(r["train_seconds"], 0), _count(r["samples_per_sec"]), _load(r),
            "–" if r["version"] is None else r["version"], r["commit"] or "–",
        ]))  # fmt: skip
    return "\n".join(lines)


# ---- the README's tables ------------------------------------------------------------------
def select_runs(records: Sequence[dict], sources: Sequence[str] = README_SOURCES) -> list[dict]:
    """Per model, the newest record from `sources` (records come newest first), ordered by
    sampled NDCG@10, best first."""
    chosen: dict[str, dict] = {}
    for r in records:
        if r["source"] in sources and r["test"]["hr@10"] is not None:
            chosen.setdefault(r["model"], r)
    return sorted(chosen.values(), key=lambda r: (-(r["test"]["ndcg@10"] or 0.0), r["model"]))


def _caption(experiment: str, rows: list[dict], store: str, sources: Sequence[str]) -> str:
    dates = sorted(r["date"][:10] for r in rows)
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    checksums = sorted({(r["dataset_checksum"] or "?").removeprefix("sha256:")[:12] for r in rows})
    which = " or ".join(f"`{s}`" for s in sources)
    return (
        f"*Generated by `python -m bench.report` from the tracking store `{store}`, experiment "
        f"`{experiment}`: per model the newest finished {which} run (run = MLflow run id, "
        f"first 8 characters), measured {span} on features dataset "
        f"{', '.join(f'`{c}`' for c in checksums)}. Times come from the shared 2-core "
        "development machine with other jobs running beside them (load avg: the 1-minute "
        "load before → after the run, where recorded), so they are pessimistic; "
        "`bench/results/quality_runs.md` lists every run.*"
    )


def _sampled_table(rows: list[dict]) -> str:
    lines = [_head("model (parameters)", "training", "HR@10", "NDCG@10", "AUC",
                   "best / run epochs", "train s", "samples/s", "load avg", "run")]  # fmt: skip
    for r in rows:
        t = r["test"]
        lines.append(_row([_model(r), _training(r), _f(t["hr@10"]), _f(t["ndcg@10"]),
                           _f(t["auc"]), _epochs(r), _f(r["train_seconds"], 0),
                           _count(r["samples_per_sec"]), _load(r), f"`{r['run']}`"]))  # fmt: skip
    pop = rows[0]["popularity"]
    lines.append(_row(["most popular (training counts)", "", _f(pop["hr@10"]),
                       _f(pop["ndcg@10"]), "", "", "", "", "",
                       f"`{rows[0]['run']}`"]))  # fmt: skip
    return "\n".join(lines)


def _full_table(rows: list[dict]) -> str:
    lines = [_head("model", "Recall@10", "NDCG@10", "Recall@50", "NDCG@50",
                   "sampled HR@10 / NDCG@10", "users", "run")]  # fmt: skip
    for r in rows:
        t = r["test"]
        lines.append(_row([
            f"**{r['model']}**", _f(t["full_recall@10"]), _f(t["full_ndcg@10"]),
            _f(t["full_recall@50"]), _f(t["full_ndcg@50"]), _pair(t["hr@10"], t["ndcg@10"]),
            _count(r["full_users"]), f"`{r['run']}`",
        ]))  # fmt: skip
    pop, run = rows[0]["popularity"], f"`{rows[0]['run']}`"
    lines.append(_row(["most popular", _f(pop["full_recall@10"]), _f(pop["full_ndcg@10"]),
                       _f(pop["full_recall@50"]), _f(pop["full_ndcg@50"]),
                       _pair(pop["hr@10"], pop["ndcg@10"]), "", run]))  # fmt: skip
    return "\n".join(lines)


def _finished(runs: Sequence[TrackedRun]) -> dict[str, list[dict]]:
    """The finished runs' records by experiment, in `runs`' order (newest first)."""
    out: dict[str, list[dict]] = {}
    for run in runs:
        if run.status == "FINISHED":
            out.setdefault(run.experiment, []).append(run_record(run))
    return out


def quality_tables(
    runs: Sequence[TrackedRun], store: str = "", sources: Sequence[str] = README_SOURCES
) -> dict[str, str]:
    """The README's tables by marker key: `<experiment>` (sampled figures) and
    `<experiment>/full` (full catalogue), each with its caption, for every experiment with a
    finished run from `sources`; `runs` (from `read_runs`) come newest first."""
    by_experiment = _finished(runs)
    tables = {}
    for experiment, records in sorted(by_experiment.items()):
        rows = select_runs(records, sources)
        if not rows:
            continue
        caption = _caption(experiment, rows, store, sources)
        tables[experiment] = f"{_sampled_table(rows)}\n\n{caption}"
        if any(r["test"]["full_recall@10"] is not None for r in rows):
            tables[f"{experiment}/full"] = (
                f"{_full_table(rows)}\n\n*Generated by `python -m bench.report`: the runs of "
                f"the `{experiment}` table above; users = test users ranked against the whole "
                "catalogue.*"
            )
    return tables


def update_readme(
    text: str, tables: dict[str, str], sources: Sequence[str] = README_SOURCES
) -> str:
    """`text` with every marked table replaced by `tables[key]`; raises `ReportError` when a
    marked key has no table (no finished run from `sources` to show) or when there is no
    marker at all."""
    missing = [m["key"] for m in MARKER.finditer(text) if m["key"] not in tables]
    if missing:
        raise ReportError(
            f"the README marks the quality tables {', '.join(missing)} but the store has no "
            f"finished {' / '.join(sources)} run of those experiments with test figures "
            f"(have: {', '.join(sorted(tables)) or 'none'}); run `python -m bench.train` first"
        )
    new, count = MARKER.subn(lambda m: m[1] + tables[m["key"]] + "\n" + m[4], text)
    if count == 0:
        raise ReportError("the README has no <!-- quality-table:<key>:begin --> marker")
    return new


# ---- files --------------------------------------------------------------------------------
def _store_name(target: TrackingTarget) -> str:
    sqlite = target.sqlite_file
    if sqlite is None:
        return target.uri
    try:  # the repository's own store reads the same on every checkout
        return str(sqlite.resolve().relative_to(ROOT))
    except ValueError:
        return str(sqlite)


def runs_files(runs: Sequence[TrackedRun], store: str) -> tuple[str, str]:
    """(`quality_runs.md`, `quality_runs.json`) of every finished run, by experiment."""
    by_experiment = _finished(runs)
    parts = [
        "# Every tracked training run\n\n"
        f"Generated by `python -m bench.report` from the tracking store `{store}`: every "
        "finished run, newest first, by experiment (dataset). Source: the command that ran it "
        "(`bench.train`, `pipeline train` for `make train`, `pipeline daily`). Figures are on "
        "the test split: sampled HR@10 / NDCG@10 / AUC against the held-out item's 99 "
        "negatives, full = ranked against the whole catalogue. Times are from a shared 2-core "
        "machine (load avg where recorded) and are pessimistic. `mlflow ui "
        f"--backend-store-uri sqlite:///{store}` shows each run by its id.\n"
    ]
    for experiment, records in sorted(by_experiment.items()):
        parts.append(f"## {experiment}\n\n{runs_markdown(records)}\n")
    if not by_experiment:
        parts.append("No finished run in the store yet.\n")
    data = {"store": store, "experiments": by_experiment}
    return "\n".join(parts), json.dumps(data, indent=1, sort_keys=True) + "\n"


def _target(args) -> TrackingTarget:
    from peppercorn.config import load_config

    target = TrackingTarget.from_config(load_config(args.config))
    if args.tracking_uri:
        uri = args.tracking_uri
        target = TrackingTarget(uri, uri, target.experiment)
    return target


def main(argv: list[str] | None = None) -> int:
    """Write (or with `--check`, compare) the quality tables; 0 when done or up to date,
    1 when `--check` finds a file out of date, 2 when the tables cannot be made."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--config", default="configs/ml100k-ncf.yaml")
    parser.add_argument("--tracking-uri", default="", help="read this store instead")
    parser.add_argument("--experiments", default="", help="comma-separated (default: all)")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--results", default=str(RESULTS), help="folder of quality_runs.*")
    parser.add_argument("--sources", default=",".join(README_SOURCES),
                        help="the run sources the README's tables choose from")  # fmt: skip
    parser.add_argument("--check", action="store_true", help="exit 1 when out of date")
    args = parser.parse_args(argv)
    target = _target(args)
    experiments = [e for e in args.experiments.split(",") if e] or None
    runs = read_runs(target, experiments)
    store = _store_name(target)
    readme = Path(args.readme)
    try:
        sources = [s for s in args.sources.split(",") if s]
        text = update_readme(readme.read_text(), quality_tables(runs, store, sources), sources)
    except (ReportError, OSError) as exc:
        print(f"bench.report: {exc}", file=sys.stderr)
        return 2
    md, js = runs_files(runs, store)
    results = Path(args.results)
    wanted = {readme: text, results / "quality_runs.md": md, results / "quality_runs.json": js}
    if args.check:
        stale = [str(p) for p, body in wanted.items() if not p.exists() or p.read_text() != body]
        for path in stale:
            print(f"bench.report: {path} is out of date with {store}", file=sys.stderr)
        return 1 if stale else 0
    results.mkdir(parents=True, exist_ok=True)
    for path, body in wanted.items():
        path.write_text(body)
    print(f"bench.report: {len(runs)} runs from {store} -> " + ", ".join(map(str, wanted)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
