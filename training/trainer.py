"""The training loop: negatives per epoch, batches, validation, early stopping, checkpoints.

Determinism: one numpy Generator seeded from `training.seed` drives shuffling and negative
sampling; its state is checkpointed every epoch with the variables and the optimizer slots,
so `resume=True` continues exactly where the interrupted run was and ends where an
uninterrupted run with the same seed ends.

Memory: above `training.memory_budget_mb` the positives are streamed by Parquet row group
(`TrainPositives`), negatives are sampled per chunk against a bounded exclusion
(`training.data.exclusion.ChunkExclusion`), the full-catalogue evaluation gathers only its
users' pairs, and the seen pairs are read only for export; what stays is the model (with the
capped `history/` table for the models that read it) plus one chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

import engine as tf
from peppercorn.config import TrainingConfig
from training import checkpoint as ckpt
from training.data import (
    Batch,
    EvalSet,
    FeatureDataset,
    SeenItems,
    UserHistory,
    batches,
    with_negatives,
)
from training.data.exclusion import ChunkExclusion, pairs_of_users
from training.data.in_batch import InBatchSampler
from training.data.positives import training_bytes_per_positive
from training.divergence import check_finite
from training.evaluation import FullCatalogue, popularity_users_scorer, sample_users, trained_items
from training.metrics import evaluate_scores
from training.models import BuildContext, ModelGraph, build_model
from training.progress import epoch_progress, summary_line
from training.scoring import (
    eval_scores,
    full_catalogue_scorer,
    make_optimizer,
    popularity_metrics,
    score_eval_set,
    score_pairs,
)

__all__ = [
    "TrainResult",
    "Trainer",
    "eval_scores",
    "make_optimizer",
    "popularity_metrics",
    "score_eval_set",
    "score_pairs",
]


@dataclass
class TrainResult:
    """What a finished run produced; `session` holds the best epoch's weights."""

    model: ModelGraph
    session: Any
    history: list[dict[str, float]]
    best_epoch: int
    metrics: dict[str, Any]
    baseline: dict[str, float]
    item_counts: np.ndarray
    checkpoint_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Trains one model on one dataset with the settings of a `TrainingConfig`."""

    def __init__(
        self,
        dataset: FeatureDataset,
        training: TrainingConfig,
        model_name: str,
        params: dict[str, Any],
        checkpoint_dir: Path,
        progress: bool = True,
        *,
        trains: bool = True,
        on_epoch: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """`trains=False` builds the model for scoring only (the distributed driver, whose
        tasks train): no negative-sampling exclusion and no training sequences are built.
        `on_epoch(phase, record)` is told each finished epoch ("select" or "refit" phase)
        with its history record, as it happens (experiment tracking logs it)."""
        self.dataset, self.cfg, self.checkpoint_dir = dataset, training, checkpoint_dir
        self.progress = progress
        self.on_epoch = on_epoch
        self.validation = dataset.eval_set("validation")
        self.test = dataset.eval_set("test")
        self.train = self._positives()
        if self.train.count == 0:
            raise ValueError(f"{dataset.path('train')}: the training split is empty")
        self.item_counts = np.zeros(dataset.n_items, np.int64)
        for _, items in self.train.all_pairs():
            self.item_counts += np.bincount(items, minlength=dataset.n_items)
        self._user_history: UserHistory | None = None  # the history/ table, read once
        self.exclude = self._exclusion(self.train) if trains else None
        self._full_catalogues: dict[str, FullCatalogue] = {}  # by split, built on first use
        ctx = BuildContext(
            dataset.n_users,
            dataset.n_items,
            dataset.profile("user"),
            dataset.profile("item"),
            tuple(dataset.features),
            dataset.history_length,
        )
        self.model = build_model(model_name, params, ctx, training.l2, training.seed)
        self.sampler = None  # a retrieval model's in-batch softmax feeds
        if self.model.towers is not None:
            p = self.model.params
            self.sampler = InBatchSampler(
                self.item_counts, int(p["uniform_negatives"]), float(p["id_dropout"])
            )
        with self.model.graph.as_default():
            self.optimizer = make_optimizer(training)
            self.train_op = self.optimizer.minimize(self.model.loss)
        self.session = tf.Session(self.model.graph, device=training.device)
        self.session.initialize_variables()
        self._load_history(self.train, sequences=trains)

    @cached_property
    def seen(self) -> SeenItems:
        """Every split's pairs (§3 `seen/`), which a version exports for serving.

        Read on first use (export, or `negatives_exclude: seen` in memory), not for training:
        it is O(number of events), and streamed training excludes less (`ChunkExclusion`).
        """
        return self.dataset.seen()

    def _positives(self, extra: EvalSet | None = None):
        # The chunk size counts what training a chunk costs, negatives included.
        budget = self.cfg.memory_budget_mb * 1024 * 1024
        row_bytes = training_bytes_per_positive(self.cfg.negatives)
        return self.dataset.train_positives(budget, extra=extra, row_bytes=row_bytes)

    def _latest(self, extra: EvalSet | None = None) -> UserHistory:
        # Each user's newest training items (`history/`), plus `extra`'s items as the newest
        # (the validation items when refitting).
        if self._user_history is None:
            self._user_history = self.dataset.user_history()
        latest = self._user_history
        return latest if extra is None else latest.with_newest(extra.users, extra.items)

    def _load_history(self, positives, extra: EvalSet | None = None, sequences=True) -> None:
        # A model with a history input reads each user's newest items; one that trains on the
        # windows around each row's place also needs the whole time-ordered sequences, a pass
        # over the split's timestamps (refused, naming the model, when streamed).
        if not self.model.has_history:
            return
        whole = None
        if sequences and self.model.needs_order:
            users, items, order = positives.history(f"model {self.model.spec.name!r}")
            whole = UserHistory.from_events(users, items, order, self.dataset.n_users)
        self.model.load_history(self._latest(extra), whole)

    def _exclusion(self, positives, extra: EvalSet | None = None) -> SeenItems | ChunkExclusion:
        # In memory: exact, today's CSR. Streamed: the bounded `ChunkExclusion`; "seen" then
        # adds the held-out pairs, "train" on refit the validation pairs trained on.
        n_users, n_items = self.dataset.n_users, self.dataset.n_items
        seen_mode = self.cfg.negatives_exclude == "seen"
        if not positives.streamed:
            return self.seen if seen_mode else trained_items(positives, None, n_users, n_items)
        held = [self.validation, self.test] if seen_mode else [extra] if extra else []
        pairs = SeenItems.from_pairs(
            np.concatenate([np.zeros(0, np.int32), *(h.users for h in held)]),
            np.concatenate([np.zeros(0, np.int32), *(h.items for h in held)]),
            n_users, n_items,
        )  # fmt: skip
        return ChunkExclusion(self._latest(extra), pairs, n_users, n_items)

    @property
    def signatures(self) -> dict:
        m = self.model
        inputs = {"user_idx": m.user_idx, "item_idx": m.item_idx}
        if m.history is not None:
            inputs["history"] = m.history
        return {"serving_default": {"inputs": inputs, "outputs": {"score": m.score}}}

    def evaluate(self, data: EvalSet) -> dict[str, float]:
        """All metrics of the current weights on `data`."""
        return evaluate_scores(*eval_scores(self.session, self.model, data))

    def evaluate_full(self, split: str) -> dict[str, float]:
        """Full-catalogue metrics of the current weights on `split` (training/evaluation.py)."""
        catalogue = self._full_catalogue(split)
        # The excluded items hold each user's fed history (the newest training items, plus the
        # validation items after refit), so `factored_scorer` has none to score again pairwise.
        scorer = full_catalogue_scorer(self.session, self.model, skip=catalogue.exclude)
        return catalogue.evaluate(**scorer)

    def _full_catalogue(self, split: str) -> FullCatalogue:
        # A candidate is any item the user has not trained on by then: validation excludes the
        # training positives (the test item stays a candidate: selection must not peek at it);
        # test also excludes the validation item, which refit trains on and which is a known
        # past interaction either way (serving never recommends it), so test figures compare
        # with and without refit.
        built = self._full_catalogues
        if split not in built:
            test = split == "test"
            data, extra = (self.test, self.validation) if test else (self.validation, None)
            # Only the evaluated users' pairs, in one pass: bounded by the sample, not the split
            # (FullCatalogue reads no other user's row; `sample_users` is its own sample).
            users = sample_users(data.users, self.cfg.full_eval_users)
            exclude = pairs_of_users(
                self.train.all_pairs(), users, self.dataset.n_users, self.dataset.n_items, extra
            )
            built[split] = FullCatalogue.build(data, exclude, self.cfg.full_eval_users)
        return built[split]

    def run_epoch(self, epoch, rng, positives=None, exclude=None, label="epoch"):
        """One pass over `positives` (default: the training split); (loss, samples, seconds).

        Public because data-parallel training (`training.distributed`) overrides it with a
        loop over each task's share of every global batch.
        """
        total_loss, samples, seconds = 0.0, 0, 0.0
        positives, exclude = positives or self.train, exclude or self.exclude
        negatives = 0 if self.sampler is not None else self.cfg.negatives
        expected = positives.count * (1 + negatives)
        # A bar on a terminal, else a plain line every `progress_interval_s` (no `\r` in logs).
        report = epoch_progress(
            f"{label} {epoch}", expected, enabled=self.progress,
            interval_s=self.cfg.progress_interval_s,
        )  # fmt: skip
        for users, items in positives.epoch_chunks(rng):
            if self.sampler is None:
                rows = with_negatives(users, items, exclude, negatives, rng)
            else:  # the other positives (and uniform draws) are the negatives
                order = rng.permutation(users.size)
                ones = np.ones(users.size, np.float32)
                rows = Batch(users[order].astype(np.int32), items[order].astype(np.int32), ones)
            start = time.perf_counter()
            for batch in batches(rows, self.cfg.batch_size):
                _, loss = self.session.run([self.train_op, self.model.loss], self._feed(batch, rng))
                total_loss += float(loss) * len(batch)
                samples += len(batch)
                report.update(len(batch), total_loss, seconds + time.perf_counter() - start)
            seconds += time.perf_counter() - start
        report.close()
        return total_loss / max(samples, 1), samples, seconds

    def _feed(self, batch, rng) -> dict:
        feed = self.model.feed_batch(batch)
        if self.sampler is not None:
            towers, extra = self.model.towers, self.sampler.feed(batch.items, rng)
            feed[towers.candidates] = extra["candidates"]
            feed[towers.correction] = extra["correction"]
            feed[towers.id_keep] = extra["id_keep"]
            feed[self.model.softmax_labels] = extra["labels"]
        return feed

    def _restore(self, path: Path, rng: np.random.Generator) -> dict[str, Any]:
        saved = ckpt.load_checkpoint(path)
        by_name = {v.name: v for v in self.model.graph.variables}
        missing = sorted(set(by_name) - set(saved.variables))
        if missing:
            raise ValueError(
                f"checkpoint {path} does not match this model (missing {missing[:3]}); "
                "was it written with another model or parameters?"
            )
        for name, value in saved.variables.items():
            if name in by_name:
                self.session.set_value(by_name[name], value)
        # Keyed by variable and slot name: the optimizer needs no guess how a table was updated.
        self.optimizer.load_state_dict(self.session, saved.optimizer)
        rng.bit_generator.state = saved.state["rng"]
        return saved.state

    def fit(self, epochs: int | None = None, resume: bool = False) -> TrainResult:
        """Train up to `epochs` (default: config), stopping early on validation NDCG@10."""
        epochs = epochs or self.cfg.epochs
        rng = np.random.default_rng(self.cfg.seed)
        state: dict[str, Any] = {
            "epoch": 0, "history": [], "best_epoch": 0, "best_ndcg": -1.0, "stale": 0,
            "stopped": False, "train_seconds": 0.0, "train_samples": 0, "wall_seconds": 0.0,
        }  # fmt: skip
        refit_dir = self.checkpoint_dir / "refit"
        latest = ckpt.latest_checkpoint(self.checkpoint_dir)
        latest_refit = ckpt.latest_checkpoint(refit_dir)
        if resume and (latest_refit or latest) is not None:
            state = self._restore(latest_refit or latest, rng)
        else:
            ckpt.prune_checkpoints(self.checkpoint_dir, keep=set())
            ckpt.prune_checkpoints(refit_dir, keep=set())
        if state.get("phase", "select") == "select":
            self._select(state, epochs, rng)
            if self.cfg.refit:
                # Fresh weights, optimizer state and random stream for the second phase.
                self.session.initialize_variables()
                rng = np.random.default_rng([self.cfg.seed, 1])
                state.update(phase="refit", refit_epoch=0, refit_history=[])
        if state.get("phase") == "refit":
            self._refit(state, rng, refit_dir)
        return self.finish(state)

    def _save(self, folder: Path, epoch: int, state: dict[str, Any], rng) -> None:
        state["rng"] = rng.bit_generator.state
        ckpt.save_checkpoint(
            folder, epoch, self.session, self.signatures,
            self.optimizer.state_dict(self.session), state,
        )  # fmt: skip

    def _select(self, state: dict[str, Any], epochs: int, rng) -> None:
        metric = self.cfg.early_stopping_metric
        used = state.get("early_stopping_metric", "ndcg@10") if state["epoch"] else metric
        if used != metric:
            raise ValueError(
                f"--resume: the checkpoints chose epochs by validation {used}, but "
                f"training.early_stopping_metric is {metric!r}; rerun without --resume"
            )
        state["early_stopping_metric"] = metric
        for epoch in range(state["epoch"] + 1, epochs + 1):
            if state["stopped"]:
                break
            wall = time.perf_counter()
            loss, samples, seconds = self.run_epoch(epoch, rng)
            check_finite(self.session, self.model.graph, epoch, loss)
            val = self.evaluate(self.validation)
            if metric.startswith("full_"):
                val = {**val, **self.evaluate_full("validation")}
            record = {
                "epoch": epoch, "loss": loss, "val_hr@10": val["hr@10"],
                "val_ndcg@10": val["ndcg@10"], "val_auc": val["auc"], "seconds": seconds,
                "samples_per_sec": samples / max(seconds, 1e-9),
            }  # fmt: skip
            record.update({f"val_{k}": v for k, v in val.items() if k.startswith("full_")})
            record.pop("val_full_users", None)
            state["history"].append(record)
            if self.on_epoch is not None:
                self.on_epoch("select", record)
            state["train_seconds"] += seconds
            state["train_samples"] += samples
            # "best_ndcg" holds the best value of `metric` (named before the metric was a choice).
            if val[metric] > state["best_ndcg"]:
                state["best_ndcg"], state["best_epoch"], state["stale"] = val[metric], epoch, 0
            else:
                state["stale"] += 1
                state["stopped"] = state["stale"] >= self.cfg.early_stopping_patience
            state["epoch"] = epoch
            state["wall_seconds"] += time.perf_counter() - wall
            self._save(self.checkpoint_dir, epoch, state, rng)
            ckpt.prune_checkpoints(self.checkpoint_dir, keep={epoch, state["best_epoch"]})
            if self.progress:
                summary_line(
                    f"epoch {epoch}: loss {loss:.4f}  val HR@10 {val['hr@10']:.4f}  "
                    f"NDCG@10 {val['ndcg@10']:.4f}  AUC {val['auc']:.4f}  "
                    + (f"{metric} {val[metric]:.4f}  " if metric.startswith("full_") else "")
                    + f"{record['samples_per_sec']:.0f} ex/s"
                )

    def _refit(self, state: dict[str, Any], rng, folder: Path) -> None:
        positives = self._positives(self.validation)
        exclude = self._exclusion(positives, self.validation)
        # Refitting on train + validation: the history now includes the validation items (on
        # resume too: the history is an input, not a checkpointed variable).
        self._load_history(positives, self.validation)
        for epoch in range(state["refit_epoch"] + 1, state["best_epoch"] + 1):
            wall = time.perf_counter()
            loss, samples, seconds = self.run_epoch(epoch, rng, positives, exclude, "refit epoch")
            check_finite(self.session, self.model.graph, epoch, loss, "refit epoch")
            state["refit_history"].append({"epoch": epoch, "loss": loss, "seconds": seconds})
            if self.on_epoch is not None:
                self.on_epoch("refit", state["refit_history"][-1])
            state["train_seconds"] += seconds
            state["train_samples"] += samples
            state["refit_epoch"] = epoch
            state["wall_seconds"] += time.perf_counter() - wall
            self._save(folder, epoch, state, rng)
            ckpt.prune_checkpoints(folder, keep={epoch})
            if self.progress:
                summary_line(f"refit epoch {epoch}/{state['best_epoch']}: loss {loss:.4f}")

    def finish(self, state: dict[str, Any]) -> TrainResult:
        """Restore the best epoch's weights, evaluate on test and return the `TrainResult`."""
        best = state["best_epoch"]
        if best == 0:
            raise ValueError("no epoch was trained; raise training.epochs or drop --resume")
        refit = state.get("phase") == "refit"
        if not refit and best != state["epoch"]:
            self._restore(ckpt.epoch_dir(self.checkpoint_dir, best), np.random.default_rng())
        test = self.evaluate(self.test)
        baseline = popularity_metrics(self.item_counts, self.test)
        best_val = next(h for h in state["history"] if h["epoch"] == best)
        metrics = {
            **test,
            "popularity_hr@10": baseline["hr@10"],
            "popularity_ndcg@10": baseline["ndcg@10"],
            "epochs": state["epoch"],
            "best_epoch": best,
            "train_seconds": state["train_seconds"],
            "wall_seconds": state["wall_seconds"],
            "train_samples_per_sec": state["train_samples"] / max(state["train_seconds"], 1e-9),
            "dataset_checksum": self.dataset.checksum,
            "validation_ndcg@10": best_val["val_ndcg@10"],
            "validation_hr@10": best_val["val_hr@10"],
            "refit": refit,
            "negatives_exclude": self.cfg.negatives_exclude,
            "early_stopping_metric": self.cfg.early_stopping_metric,
            f"validation_{self.cfg.early_stopping_metric}": best_val[
                f"val_{self.cfg.early_stopping_metric}"
            ],
        }
        if self.cfg.full_eval_users:
            start = time.perf_counter()
            metrics.update(self.evaluate_full("test"))
            metrics["full_eval_seconds"] = time.perf_counter() - start
            by_count = popularity_users_scorer(self.item_counts)
            popular = self._full_catalogue("test").evaluate(score_users=by_count)
            del popular["full_users"]
            baseline.update(popular)
            metrics.update({f"popularity_{k}": v for k, v in popular.items()})
        return TrainResult(
            self.model, self.session, state["history"], best, metrics, baseline,
            self.item_counts, self.checkpoint_dir,
        )  # fmt: skip
