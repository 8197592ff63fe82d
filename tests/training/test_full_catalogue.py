"""Full-catalogue evaluation against a hand-worked case and a brute-force numpy oracle."""

import json
import math

import numpy as np
import pytest

from engine.saved import load
from peppercorn.config import ConfigError, TrainingConfig, load_config
from training.data import EvalSet, SeenItems
from training.evaluation import FullCatalogue, popularity_scorer, sample_users
from training.export import export_model
from training.trainer import Trainer, score_pairs

FULL_KEYS = ("full_recall@10", "full_ndcg@10", "full_recall@50", "full_ndcg@50")


def _eval_set(users, items):
    users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
    return EvalSet(users, items, np.ones((users.size, 1), np.int32))  # negatives unused


def _csr(pairs, n_users, n_items):
    users, items = (np.array(x, np.int64) for x in zip(*pairs, strict=True))
    return SeenItems.from_pairs(users, items, n_users, n_items)


def oracle(scores, trained, relevant, ks):
    """Brute force: sort each user's candidates fully, ties pessimistic; mean recall/NDCG.

    `scores` [users, items] (column 0 is the unknown item, never a candidate), `trained` and
    `relevant` dicts user -> set of items. Users without a relevant candidate are skipped.
    """
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
    for user, rel in relevant.items():
        rel = rel - trained.get(user, set())
        if not rel:
            continue
        cands = np.array([i for i in range(1, scores.shape[1]) if i not in trained.get(user, ())])
        is_rel = np.isin(cands, list(rel))
        # primary key: score descending; among equal scores non-relevant (False) first
        ranked = cands[np.lexsort((is_rel, -scores[user, cands]))]
        for k in ks:
            hits = [p for p, item in enumerate(ranked[:k]) if item in rel]
            dcg = sum(1 / math.log2(p + 2) for p in hits)
            idcg = sum(1 / math.log2(p + 2) for p in range(min(k, len(rel))))
            out[f"recall@{k}"].append(len(hits) / len(rel))
            out[f"ndcg@{k}"].append(dcg / idcg)
    return {f"full_{key}": float(np.mean(v)) for key, v in out.items()}


def test_hand_worked_three_users_six_items():
    # Items 1..6 (column 0 is the unknown item). K = 2.
    scores = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0],  # user 0: not evaluated
            [0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [0, 0.1, 0.5, 0.5, 0.9, 0.2, 0.3],
            [0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        ]
    )
    trained = _csr([(1, 1), (2, 4), (3, 5), (3, 6)], 4, 7)
    data = _eval_set([1, 2, 2, 3], [3, 2, 6, 1])
    full = FullCatalogue.build(data, trained, max_users=100)
    got = full.evaluate(lambda u, i: scores[u, i], ks=(2,))
    # user 1: item 1 (0.9) is trained on, so the ranking is 2, 3, ...: item 3 at position 1.
    #   recall 1, NDCG 1/log2(3) / 1. (Had item 1 stayed a candidate, item 3 would miss.)
    # user 2: item 4 trained on; ranking 3 (0.5), 2 (0.5, relevant: after the tied 3), 6, 5, 1.
    #   Relevant 2 at 1 and 6 at 2: recall 1/2, NDCG (1/log2 3) / (1 + 1/log2 3).
    # user 3: constant scores, relevant item 1 after all three tied candidates: position 3.
    g = 1 / math.log2(3)
    assert got["full_recall@2"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["full_ndcg@2"] == pytest.approx((g + g / (1 + g) + 0) / 3)
    assert got["full_users"] == 3


def test_a_relevant_item_the_user_trained_on_is_dropped():
    scores = np.tile(np.linspace(1, 0, 5), (3, 1))  # item 0 best, then 1, 2, ...
    trained = _csr([(1, 1), (2, 2)], 3, 5)
    # user 1's only relevant item is trained on: not evaluated; user 2 keeps item 3 only
    full = FullCatalogue.build(_eval_set([1, 2, 2], [1, 2, 3]), trained, max_users=10)
    got = full.evaluate(lambda u, i: scores[u, i], ks=(1, 2))
    assert got["full_users"] == 1
    # user 2's candidates: 1, 3, 4 -> item 3 at position 1
    assert got["full_recall@1"] == 0.0 and got["full_recall@2"] == 1.0
    assert got["full_ndcg@2"] == pytest.approx(1 / math.log2(3))


@pytest.mark.parametrize("chunk_pairs", [1, 37, 200, 10**6])
def test_chunked_matches_brute_force_oracle(chunk_pairs):
    rng = np.random.default_rng(11)
    n_users, n_items = 25, 40
    # few distinct values: many ties, so the tie rule is exercised
    scores = rng.integers(0, 6, (n_users, n_items)).astype(np.float32)
    trained = {u: set(rng.choice(np.arange(1, n_items), rng.integers(0, 12), replace=False))
               for u in range(n_users)}  # fmt: skip
    relevant = {u: set(rng.choice(np.arange(1, n_items), rng.integers(1, 6), replace=False))
                for u in range(1, n_users, 2)}  # fmt: skip
    pairs = [(u, i) for u, items in trained.items() for i in items]
    exclude = _csr(pairs, n_users, n_items)
    rel_pairs = [(u, i) for u, items in relevant.items() for i in sorted(items)]
    data = _eval_set(*zip(*rel_pairs, strict=True))
    full = FullCatalogue.build(data, exclude, max_users=n_users)
    got = full.evaluate(lambda u, i: scores[u, i], ks=(1, 3, 10), chunk_pairs=chunk_pairs)
    want = oracle(scores, trained, relevant, ks=(1, 3, 10))
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    assert got["full_users"] == sum(1 for u, r in relevant.items() if r - trained[u])


def test_constant_scores_rank_every_relevant_item_last():
    full = FullCatalogue.build(_eval_set([1, 2], [3, 4]), _csr([(1, 1)], 3, 100), max_users=5)
    got = full.evaluate(lambda u, i: np.zeros(u.size, np.float32))
    assert all(got[k] == 0.0 for k in FULL_KEYS)


def test_popularity_scorer_ranks_by_count():
    counts = np.array([0, 5, 9, 1, 3])
    full = FullCatalogue.build(_eval_set([1], [1]), _csr([(1, 2)], 2, 5), max_users=5)
    # item 2 (count 9) is trained on; item 1 (5) leads the rest
    assert full.evaluate(popularity_scorer(counts), ks=(1,))["full_recall@1"] == 1.0


def test_user_sample_is_seeded_and_sized():
    users = np.repeat(np.arange(5000, 0, -1), 2)  # 5,000 users, each twice, unsorted
    first, again = sample_users(users, 1200), sample_users(users, 1200)
    np.testing.assert_array_equal(first, again)
    assert first.size == 1200 and np.unique(first).size == 1200
    assert np.isin(first, users).all() and (np.diff(first) > 0).all()
    assert not np.array_equal(first, sample_users(users, 1200, seed=1))
    np.testing.assert_array_equal(sample_users(users, 5000), np.arange(1, 5001))
    np.testing.assert_array_equal(sample_users(users, 10**6), np.arange(1, 5001))
    full = FullCatalogue.build(_eval_set(users, users % 7 + 1), _csr([(0, 1)], 5001, 8), 300)
    np.testing.assert_array_equal(full.users, sample_users(users, 300))


def test_config_keys():
    cfg = TrainingConfig()
    assert cfg.early_stopping_metric == "ndcg@10" and cfg.full_eval_users == 20_000
    with pytest.raises(ValueError, match="early_stopping_metric"):
        TrainingConfig(early_stopping_metric="full_ndcg@10", full_eval_users=0)
    with pytest.raises(ValueError, match="distributed"):
        TrainingConfig(early_stopping_metric="full_ndcg@10", distributed={"workers": 2})


def test_config_file_rejects_an_unknown_metric(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  early_stopping_metric: full_auc\n")
    with pytest.raises(ConfigError, match="early_stopping_metric"):
        load_config(path)


# --- the trainer ---------------------------------------------------------------------------


def _cfg(**kw):
    base = dict(epochs=3, batch_size=64, learning_rate=0.01, l2=0.001, seed=7)
    return TrainingConfig(**{**base, **kw})


def _sets(users, items):
    out: dict[int, set] = {}
    for u, i in zip(users.tolist(), items.tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


def test_trainer_writes_full_metrics_with_train_and_validation_excluded(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(refit=True), "gmf", {"factors": 4}, tmp_path / "ck", False)
    result = trainer.fit()
    exported = export_model(result, dataset, trainer.seen, tmp_path / "repo", "gmf", None)
    saved = load(tmp_path / "repo" / "gmf" / str(exported.version))
    metrics = json.loads(saved.assets["metrics.json"])
    for key in (*FULL_KEYS, "full_users", "full_eval_seconds",
                *(f"popularity_{k}" for k in FULL_KEYS)):  # fmt: skip
        assert key in metrics, key
    assert metrics["full_users"] == np.unique(trainer.test.users).size  # 40 < 20,000: all
    # Oracle: score the whole matrix, exclude train + validation positives by hand.
    n_users, n_items = dataset.n_users, dataset.n_items
    users = np.repeat(np.arange(n_users), n_items)
    items = np.tile(np.arange(n_items), n_users)
    scores = score_pairs(result.session, result.model, users, items).reshape(n_users, n_items)
    train_u, train_i = (np.concatenate(x) for x in zip(*trainer.train.all_pairs(), strict=True))
    val = trainer.validation
    trained = _sets(np.r_[train_u, val.users], np.r_[train_i, val.items])
    relevant = _sets(trainer.test.users, trainer.test.items)
    want = oracle(scores, trained, relevant, ks=(10, 50))
    counts = np.bincount(train_i, minlength=n_items).astype(float)
    want_pop = oracle(np.tile(counts, (n_users, 1)), trained, relevant, ks=(10, 50))
    for key in FULL_KEYS:
        assert metrics[key] == pytest.approx(want[key]), key
        assert metrics[f"popularity_{key}"] == pytest.approx(want_pop[key]), key
    assert result.baseline["full_ndcg@10"] == metrics["popularity_full_ndcg@10"]


def test_no_full_metrics_when_switched_off(dataset, tmp_path):
    result = Trainer(dataset, _cfg(epochs=1, full_eval_users=0), "gmf", {"factors": 4},
                     tmp_path, False).fit()  # fmt: skip
    assert not any(key.startswith(("full_", "popularity_full_")) for key in result.metrics)


def test_early_stopping_follows_the_full_metric_and_its_patience(dataset, tmp_path, monkeypatch):
    # Scripted validation figures: the sampled NDCG rises every epoch, the full one peaks at
    # epoch 2; with patience 2 training stops after epoch 4 and keeps epoch 2.
    full = iter([0.1, 0.3, 0.2, 0.25, 0.9, 0.9])
    sampled = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    real_evaluate = Trainer.evaluate
    monkeypatch.setattr(Trainer, "evaluate_full", lambda self, split: {"full_ndcg@10": next(full)})
    monkeypatch.setattr(
        Trainer,
        "evaluate",
        lambda self, data: {**real_evaluate(self, data), "ndcg@10": next(sampled)},
    )
    cfg = _cfg(epochs=6, early_stopping_patience=2, early_stopping_metric="full_ndcg@10")
    result = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path, progress=False).fit()
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.best_epoch == 2
    assert [h["val_full_ndcg@10"] for h in result.history] == [0.1, 0.3, 0.2, 0.25]
    assert result.metrics["validation_full_ndcg@10"] == 0.3


def test_early_stopping_on_the_full_metric_keeps_the_best_weights(dataset, tmp_path):
    # A learning rate this high makes validation figures fall after the first epochs.
    cfg = _cfg(epochs=10, learning_rate=0.3, early_stopping_patience=1,
               early_stopping_metric="full_ndcg@10")  # fmt: skip
    trainer = Trainer(dataset, cfg, "gmf", {"factors": 8}, tmp_path, progress=False)
    result = trainer.fit()
    values = [h["val_full_ndcg@10"] for h in result.history]
    assert result.best_epoch == int(np.argmax(values)) + 1
    assert len(values) in (result.best_epoch + 1, 10)
    assert result.metrics["early_stopping_metric"] == "full_ndcg@10"
    assert result.metrics["validation_full_ndcg@10"] == max(values)
    # the session holds the best epoch's weights: an independent validation figure matches
    n_users, n_items = dataset.n_users, dataset.n_items
    users = np.repeat(np.arange(n_users), n_items)
    items = np.tile(np.arange(n_items), n_users)
    scores = score_pairs(result.session, result.model, users, items).reshape(n_users, n_items)
    train_u, train_i = (np.concatenate(x) for x in zip(*trainer.train.all_pairs(), strict=True))
    want = oracle(scores, _sets(train_u, train_i),
                  _sets(trainer.validation.users, trainer.validation.items), ks=(10,))  # fmt: skip
    assert want["full_ndcg@10"] == pytest.approx(max(values))


def test_report_names_each_protocol_and_shows_the_full_figures(tmp_path):
    from training.report import write_report

    history = [{"epoch": e, "loss": 0.5, "val_hr@10": 0.5, "val_ndcg@10": 0.25,
                "val_full_ndcg@10": v} for e, v in ((1, 0.125), (2, 0.0625))]  # fmt: skip
    metrics = {"best_epoch": 1, "epochs": 2, "early_stopping_metric": "full_ndcg@10",
               "hr@10": 0.5, "full_users": 943, "full_eval_seconds": 6.5,
               **{key: 0.1 for key in FULL_KEYS}}  # fmt: skip
    baseline = {"hr@10": 0.25, **{key: 0.05 for key in FULL_KEYS}}
    text = write_report(tmp_path, "gmf", {}, history, metrics, baseline).read_text()
    assert "early stopping on validation full_ndcg@10" in text
    assert "Sampled protocol" in text and "against the full catalogue" in text
    assert "| full_recall@50 | 0.1000 | 0.0500 |" in text and "943 users" in text
    assert "| 2 | 0.5000 | 0.5000 | 0.2500 | 0.0625 | 0.0 |" in text
    del metrics["full_users"], metrics["early_stopping_metric"]
    text = write_report(tmp_path, "gmf", {}, history, metrics, baseline).read_text()
    assert "full catalogue" not in text and "early stopping on validation ndcg@10" in text
