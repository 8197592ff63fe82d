"""Quality of the two-stage chain (issue #16): retrieve N -> rank, against ranking every item.

`python -m bench.chain_quality [--datasets synthetic,ml100k-ncf] [--tune]` trains, per dataset,
the config's ranker and the two-tower retrieval model on the same features (`make etl` first),
then measures on the test split, with the trainer's own full-catalogue evaluation (same users,
same exclusions as `Trainer._full_catalogue("test")`):

- rank-all: the ranker scores every candidate item;
- retrieval: the two-tower alone, and its recall@N (share of the test items among the user's N
  retrieved candidates);
- the chain: per user, N candidates from the item index built as export builds it (over-fetched
  by the user's excluded items, which are then dropped, as serving/chain.py does), ranked by
  the ranker; every other item scores below all of them.

Target (issue #16): chain Recall@50 within 3 % (relative) of rank-all's. Results go to
`bench/results/chain_quality.{md,json}`; `--tune` trains the two-tower variants of `TUNING`
and reports their validation figures instead (what chose `PLAN`'s settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from peppercorn.ann import EF_SEARCH_UNIT_NORM, AnnIndex, set_search_threads
from peppercorn.config import TrainingConfig, load_config
from training.evaluation import FullCatalogue, popularity_users_scorer
from training.models import resolve_params
from training.scoring import full_catalogue_scorer

__all__ = ["Plan", "chain_quality", "main", "measure", "retrieve", "served", "target_met"]

RESULTS = Path(__file__).resolve().parent / "results"
RETRIEVAL = "two_tower"
KS = (10, 50)
TARGET_GAP = -0.03  # (chain - rank-all) / rank-all of Recall@50, issue #16
SERVED_N = 200  # serving.recommend's candidates
# (candidates, search): the index as export builds it (exact below 20k unit-norm items, so on
# these catalogues it is exact too), HNSW forced as a catalogue of 20k+ items would get, and a
# numpy brute force independent of faiss.
SETTINGS = (
    *((n, "export") for n in (100, 200, 300, 400, 500)), (200, "hnsw"), (200, "exact"),
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """One dataset: its config and the two-tower's params and training overrides."""

    config: str
    retrieval_params: dict[str, Any] = field(default_factory=dict)
    retrieval_training: dict[str, Any] = field(default_factory=dict)


# Early stopping on the retrieval's own task (ranking the whole catalogue) rather than the
# sampled NDCG@10 the rankers stop on: it trains longer and retrieves better on validation.
_STOP = {"early_stopping_metric": "full_recall@50"}
# Chosen on the validation split with `--tune` (bench/results/chain_quality.md, "Tuning"):
# the two-tower's default params, the config's training settings, stopped on full recall@50.
PLAN = {
    "synthetic": Plan("configs/default.yaml", retrieval_training=_STOP),
    "ml100k-ncf": Plan("configs/ml100k-ncf.yaml", retrieval_training=_STOP),
}
# The variants `--tune` compares, per dataset: (label, params, training overrides).
TUNING: dict[str, list[tuple[str, dict, dict]]] = {
    "synthetic": [("defaults", {}, {}), ("stop on full recall@50", {}, _STOP)],
    "ml100k-ncf": [
        ("defaults", {}, {}),
        ("stop on full recall@50", {}, _STOP),
        ("lr 0.01", {}, {**_STOP, "learning_rate": 0.01}),
        ("temperature 0.1", {"temperature": 0.1}, _STOP),
        ("temperature 0.02", {"temperature": 0.02}, _STOP),
        ("uniform negatives 1024", {"uniform_negatives": 1024}, _STOP),
        ("id dropout 0", {"id_dropout": 0.0}, _STOP),
        ("dim 64", {"dim": 64, "id_dim": 64}, _STOP),
    ],
}


def _training(base: TrainingConfig, overrides: dict[str, Any]) -> TrainingConfig:
    # Validated again, so an override such as a full_* stopping metric is checked.
    return TrainingConfig(**{**base.model_dump(), **overrides})


def train(dataset, training: TrainingConfig, model: str, params: dict, progress: bool = False):
    """(`Trainer`, `TrainResult`) of one model, its checkpoints in a throwaway folder."""
    from training.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="chain-quality-") as tmp:
        trainer = Trainer(dataset, training, model, params, Path(tmp), progress=progress)
        result = trainer.fit()
    return trainer, result


def user_vectors(session, model, users: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The `user_embedding` signature's vectors (the whole fed history), as serving queries."""
    parts = []
    for lo in range(0, users.size, batch):
        chunk = users[lo : lo + batch].astype(np.int32)
        feed = {model.user_idx: chunk}
        if model.has_history:
            feed[model.history] = model.history_rows(chunk)
        parts.append(np.asarray(session.run(model.towers.user_embedding, feed), np.float32))
    return np.concatenate(parts)


def retrieve(search, queries: np.ndarray, users: np.ndarray, exclude, n: int) -> np.ndarray:
    """[len(users), n] item indices (-1 padded): each user's top n not in its `exclude` row.

    `search(query [1, d], k)` -> item ids [1, k]. Asked for n plus the user's excluded count,
    which are then dropped, as serving/chain.py does, so each user gets n eligible items.
    """
    out = np.full((users.size, n), -1, np.int64)
    for row, user in enumerate(users):
        excluded = exclude.indices[exclude.indptr[user] : exclude.indptr[user + 1]]
        found = search(queries[row : row + 1], n + excluded.size)[0]
        found = found[(found >= 0) & ~np.isin(found, excluded)][:n]
        out[row, : found.size] = found
    return out


def _searcher(kind: str, vectors: np.ndarray):
    # vectors [n_items, d], row 0 the unknown item, which (as in export) is not indexed.
    ids = np.arange(1, vectors.shape[0], dtype=np.int64)
    if kind == "exact":
        items = vectors[1:]

        def brute(query: np.ndarray, k: int) -> np.ndarray:
            scores = (query @ items.T)[0]
            return ids[np.argsort(-scores, kind="stable")[:k]][None, :]

        return brute
    # "hnsw": what export builds for the two-tower's unit-norm vectors from 20,000 items.
    forced = {"exact_below": 0, "ef_search": EF_SEARCH_UNIT_NORM} if kind == "hnsw" else {}
    index = AnnIndex.build(vectors[1:], ids, **forced)
    return lambda query, k: index.search(query, k)[0]


def _recall(candidates: np.ndarray, catalogue: FullCatalogue) -> float:
    # Mean over users of |candidates ∩ relevant| / |relevant|, as Recall@K is averaged.
    rel = catalogue.relevant
    shares = [
        np.isin(rel.indices[rel.indptr[r] : rel.indptr[r + 1]], candidates[r]).mean()
        for r in range(catalogue.users.size)
    ]
    return float(np.mean(shares))


def _ranker_matrix(session, model, catalogue: FullCatalogue) -> np.ndarray:
    """The ranker's logits [users, n_items - 1] for the catalogue's users, scored once.

    A pair's score does not depend on which other items are scored, so masking this matrix
    to the candidates is ranking the candidates alone; the small catalogues here fit in memory.
    """
    scorer = full_catalogue_scorer(session, model, skip=catalogue.exclude)
    users, columns = catalogue.users, np.arange(1, catalogue.n_items)
    if "score_users" in scorer:
        return np.asarray(scorer["score_users"](users))
    pairs = scorer["score"](np.repeat(users, columns.size), np.tile(columns, users.size))
    return np.asarray(pairs).reshape(users.size, columns.size)


def _rows_scorer(matrix: np.ndarray, users: np.ndarray):
    # FullCatalogue.evaluate asks for chunks of its (sorted) users: their rows of `matrix`.
    return lambda chunk: matrix[np.searchsorted(users, chunk)].copy()


def _chain_matrix(ranker: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    # Non-candidates score the dtype's lowest finite value (evaluate refuses infinities), so
    # they rank below every candidate; the evaluation's pessimistic ties put a relevant one
    # after all of them, i.e. at position >= N.
    out = np.full_like(ranker, np.finfo(ranker.dtype).min)
    rows, slots = np.nonzero(candidates > 0)
    cols = candidates[rows, slots] - 1
    out[rows, cols] = ranker[rows, cols]
    return out


def _metrics(found: dict) -> dict:
    return {k: v for k, v in found.items() if k != "full_users"}


def measure(ranker, retrieval, settings=SETTINGS, ks=KS) -> dict:
    """Rank-all, retrieval and chain figures on the test split, from two fitted Trainers."""
    catalogue = ranker._full_catalogue("test")
    other = retrieval._full_catalogue("test")
    if not np.array_equal(catalogue.users, other.users):
        raise ValueError("the ranker and the retrieval model evaluate different test users")
    users = catalogue.users
    matrix = _ranker_matrix(ranker.session, ranker.model, catalogue)
    rank_all = _metrics(catalogue.evaluate(score_users=_rows_scorer(matrix, users), ks=ks))
    by_count = popularity_users_scorer(ranker.item_counts)
    popularity = _metrics(catalogue.evaluate(score_users=by_count, ks=(*ks, SERVED_N)))
    two_tower = full_catalogue_scorer(retrieval.session, retrieval.model, skip=catalogue.exclude)
    alone = _metrics(catalogue.evaluate(**two_tower, ks=(*ks, SERVED_N)))
    session, model = retrieval.session, retrieval.model
    vectors = np.asarray(session.run(model.factors.item_vectors), np.float32)  # as export
    queries = user_vectors(session, model, users)
    searchers, chain = {}, []
    for n, kind in settings:
        searcher = searchers.setdefault(kind, _searcher(kind, vectors))
        start = time.perf_counter()
        candidates = retrieve(searcher, queries, users, catalogue.exclude, n)
        seconds = time.perf_counter() - start
        chained = _rows_scorer(_chain_matrix(matrix, candidates), users)
        row = {
            "n": n,
            "search": kind,
            "retrieval_recall": _recall(candidates, catalogue),
            **_metrics(catalogue.evaluate(score_users=chained, ks=ks)),
            "retrieve_seconds": round(seconds, 2),
        }
        for k in ks:
            base = rank_all[f"full_recall@{k}"]
            row[f"gap_recall@{k}"] = (row[f"full_recall@{k}"] - base) / base if base else None
        chain.append(row)
    return {
        "users": int(users.size),
        "n_items": int(catalogue.n_items - 1),
        "rank_all": rank_all,
        "retrieval": alone,
        "popularity": popularity,
        "chain": chain,
    }


def chain_quality(
    dataset,
    training: TrainingConfig,
    ranker: tuple[str, dict],
    retrieval_params: dict,
    retrieval_training: dict,
    settings=SETTINGS,
    progress: bool = False,
) -> dict:
    """Train the ranker and the two-tower on `dataset`, then `measure`; the JSON record."""
    name, params = ranker[0], resolve_params(*ranker)
    two_params = resolve_params(RETRIEVAL, retrieval_params)
    two_training = _training(training, retrieval_training)
    runs = {}
    start = time.perf_counter()
    rank_trainer, rank_result = train(dataset, training, name, params, progress)
    runs["ranker"] = _run_record(name, params, training, rank_result, time.perf_counter() - start)
    start = time.perf_counter()
    two_trainer, two_result = train(dataset, two_training, RETRIEVAL, two_params, progress)
    runs["retrieval"] = _run_record(
        RETRIEVAL, two_params, two_training, two_result, time.perf_counter() - start
    )
    start = time.perf_counter()
    found = measure(rank_trainer, two_trainer, settings)
    found["measure_seconds"] = round(time.perf_counter() - start, 1)
    record = {"models": runs, **found}
    record["target_met"] = target_met(record)
    return record


def _run_record(model, params, training, result, seconds) -> dict:
    m = result.metrics
    return {
        "model": model,
        "params": params,
        "training": training.model_dump(exclude={"distributed", "device", "memory_budget_mb"}),
        "best_epoch": result.best_epoch,
        "epochs_run": m["epochs"],
        # The trainer's own test evaluation, which rank-all must reproduce.
        "trainer_full": {k: v for k, v in m.items() if k.startswith(("full_recall", "full_ndcg"))},
        "wall_seconds": round(seconds, 1),
    }


def tune(dataset, training: TrainingConfig, variants, progress: bool = False) -> list[dict]:
    """Validation figures of two-tower variants (no refit: refit would train on validation)."""
    rows = []
    for label, params, overrides in variants:
        cfg = _training(training, {"refit": False, **overrides})
        start = time.perf_counter()
        trainer, result = train(
            dataset, cfg, RETRIEVAL, resolve_params(RETRIEVAL, params), progress
        )
        catalogue = trainer._full_catalogue("validation")
        scorer = full_catalogue_scorer(trainer.session, trainer.model, skip=catalogue.exclude)
        found = _metrics(catalogue.evaluate(**scorer, ks=(*KS, SERVED_N)))
        metric = f"val_{cfg.early_stopping_metric}"
        rows.append(
            {
                "label": label,
                "params": params,
                "training": overrides,
                "best_epoch": result.best_epoch,
                "epochs_run": result.metrics["epochs"],
                "validation": found,
                "curve": [round(h[metric], 4) for h in result.history],  # stopping metric
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"  {label}: validation {_brief(found)}", flush=True)
    return rows


def _brief(found: dict) -> str:
    return f"recall@50 {found['full_recall@50']:.4f} recall@200 {found['full_recall@200']:.4f}"


def _load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.1f} %"


def table(r: dict) -> str:
    """The markdown table of one dataset's record."""
    lines = [
        "| setting | candidates | retrieval recall@N | Recall@10 | NDCG@10 | Recall@50 "
        "| NDCG@50 | Recall@50 gap |",
        "|---" * 8 + "|",
    ]
    ra, rt = r["rank_all"], r["retrieval"]
    lines.append(
        f"| rank-all ({r['models']['ranker']['model']}) | all {r['n_items']} | 1.000 "
        f"| {ra['full_recall@10']:.4f} | {ra['full_ndcg@10']:.4f} | {ra['full_recall@50']:.4f} "
        f"| {ra['full_ndcg@50']:.4f} | – |"
    )
    lines.append(
        f"| retrieval alone (two_tower) | all {r['n_items']} | @200: {rt['full_recall@200']:.4f} "
        f"| {rt['full_recall@10']:.4f} | {rt['full_ndcg@10']:.4f} | {rt['full_recall@50']:.4f} "
        f"| {rt['full_ndcg@50']:.4f} | {_pct(_gap(rt, ra))} |"
    )
    pop = r["popularity"]
    lines.append(
        f"| most popular | all {r['n_items']} | @200: {pop['full_recall@200']:.4f} "
        f"| {pop['full_recall@10']:.4f} | {pop['full_ndcg@10']:.4f} | {pop['full_recall@50']:.4f} "
        f"| {pop['full_ndcg@50']:.4f} | {_pct(_gap(pop, ra))} |"
    )
    for c in r["chain"]:
        lines.append(
            f"| chain, {c['search']} search | {c['n']} | {c['retrieval_recall']:.4f} "
            f"| {c['full_recall@10']:.4f} | {c['full_ndcg@10']:.4f} | {c['full_recall@50']:.4f} "
            f"| {c['full_ndcg@50']:.4f} | {_pct(c['gap_recall@50'])} |"
        )
    return "\n".join(lines)


def _gap(found: dict, base: dict) -> float | None:
    b = base["full_recall@50"]
    return (found["full_recall@50"] - b) / b if b else None


def served(record: dict) -> dict | None:
    """The chain row serving runs (N = 200 with the index export builds), if measured."""
    rows = (c for c in record["chain"] if c["n"] == SERVED_N and c["search"] == "export")
    return next(rows, None)


def target_met(record: dict) -> bool | None:
    """Whether the served chain's Recall@50 is within TARGET_GAP of rank-all's (None: unknown)."""
    row = served(record)
    if row is None or row["gap_recall@50"] is None:
        return None
    return row["gap_recall@50"] >= TARGET_GAP


def main(argv: list[str] | None = None) -> int:
    from training.data import open_dataset

    parser = argparse.ArgumentParser(prog="python -m bench.chain_quality")
    parser.add_argument("--datasets", default=",".join(PLAN))
    parser.add_argument("--tune", action="store_true", help="compare TUNING on validation")
    parser.add_argument("--out", default="chain_quality", help="results stem under bench/results")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    set_search_threads(1)  # one query at a time, as a server worker asks; a shared machine
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    out: dict[str, Any] = {"machine": machine, "date": time.strftime("%Y-%m-%d"), "datasets": {}}
    for name in args.datasets.split(","):
        plan = PLAN[name]
        cfg = load_config(plan.config)
        dataset = open_dataset(cfg.dataset_root())
        before = _load_average()
        if args.tune:
            print(f"{name}: tuning the two-tower on validation", flush=True)
            rows = tune(dataset, cfg.training, TUNING[name], args.progress)
            record = {"tuning": rows, "tuning_load": [before, _load_average()]}
        else:
            record = chain_quality(
                dataset, cfg.training, (cfg.model.name, cfg.model.params),
                plan.retrieval_params, plan.retrieval_training, progress=args.progress,
            )  # fmt: skip
            gap = _pct(served(record)["gap_recall@50"])
            print(
                f"{name}:\n{table(record)}\nserved chain gap {gap}, target met: "
                f"{record['target_met']}",
                flush=True,
            )
            record.update(load_before=before, load_after=_load_average())
        record["config"] = plan.config
        out["datasets"][name] = record
    _write(RESULTS / f"{args.out}.json", out)
    return 0


def _write(path: Path, out: dict) -> None:
    # Merged into what is there per dataset, so a --tune run keeps the last measurement and
    # a measurement keeps the tuning that chose its settings.
    old = json.loads(path.read_text()) if path.exists() else {}
    datasets = old.get("datasets", {})
    for name, record in out["datasets"].items():
        datasets[name] = {**datasets.get(name, {}), **record}
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {**old, **out, "datasets": datasets}
    path.write_text(json.dumps(merged, indent=1, default=float) + "\n")


if __name__ == "__main__":
    sys.exit(main())
