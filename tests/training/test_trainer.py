"""Trainer: resume equivalence, early stopping, export fidelity, on a tiny synthetic dataset."""

import json
import shutil

import numpy as np
import pytest

from engine.saved import load
from peppercorn.config import TrainingConfig
from training import checkpoint as ckpt
from training.export import export_model
from training.metrics import ndcg_at_k
from training.trainer import Trainer, popularity_metrics, score_pairs

PARAMS = {"factors": 8, "mlp_embedding": 4, "layers": [8, 4]}


def _cfg(**kw):
    base = dict(epochs=4, batch_size=64, learning_rate=0.01, l2=0.001, seed=7)
    base.update(kw)
    return TrainingConfig(**base)


def _variables(result):
    return {v.name: result.session.get_value(v) for v in result.model.graph.variables}


def test_resume_ends_where_an_uninterrupted_run_ends(dataset, tmp_path):
    cfg = _cfg(early_stopping_patience=10)
    straight = Trainer(dataset, cfg, "neumf", PARAMS, tmp_path / "a", progress=False).fit()

    first = Trainer(dataset, cfg, "neumf", PARAMS, tmp_path / "b", progress=False)
    first.fit(epochs=2)  # "interrupted" after epoch 2
    assert ckpt.latest_checkpoint(tmp_path / "b").name == "epoch-0002"
    resumed = Trainer(dataset, cfg, "neumf", PARAMS, tmp_path / "b", progress=False)
    finished = resumed.fit(resume=True)

    assert [h["epoch"] for h in finished.history] == [1, 2, 3, 4]
    for a, b in zip(straight.history, finished.history, strict=True):
        assert a["loss"] == b["loss"] and a["val_ndcg@10"] == b["val_ndcg@10"]
    want, got = _variables(straight), _variables(finished)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert straight.metrics["hr@10"] == finished.metrics["hr@10"]


def test_refit_resume_matches_uninterrupted_refit(dataset, tmp_path, monkeypatch):
    cfg = _cfg(epochs=3, early_stopping_patience=10, refit=True)
    straight = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "a", progress=False).fit()
    assert straight.metrics["refit"] and straight.best_epoch >= 1

    interrupted = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "b", progress=False)
    original = Trainer._save

    def save_then_die(self, folder, epoch, state, rng):
        original(self, folder, epoch, state, rng)
        if folder.name == "refit" and epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save", save_then_die)
    if straight.best_epoch > 1:
        with pytest.raises(KeyboardInterrupt):
            interrupted.fit()
    monkeypatch.setattr(Trainer, "_save", original)
    resumed = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "b", progress=False)
    finished = resumed.fit(resume=True)
    want, got = _variables(straight), _variables(finished)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # the refit model saw the validation positives: its weights differ from the selection run
    selected = Trainer(dataset, _cfg(epochs=3, early_stopping_patience=10), "gmf",
                       {"factors": 4}, tmp_path / "c", progress=False).fit()  # fmt: skip
    assert not np.array_equal(_variables(selected)["gmf/user"], want["gmf/user"])


def test_without_resume_starts_afresh(dataset, tmp_path):
    cfg = _cfg(epochs=2)
    Trainer(dataset, cfg, "gmf", {"factors": 8}, tmp_path, progress=False).fit()
    again = Trainer(dataset, cfg, "gmf", {"factors": 8}, tmp_path, progress=False).fit()
    assert [h["epoch"] for h in again.history] == [1, 2]


def test_learns_and_beats_popularity(dataset, tmp_path):
    result = Trainer(dataset, _cfg(epochs=6), "gmf", {"factors": 8}, tmp_path, False).fit()
    assert result.metrics["hr@10"] > result.metrics["popularity_hr@10"]
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_early_stopping_keeps_best_epoch(dataset, tmp_path):
    # A learning rate this high makes validation NDCG fall after the first epochs.
    cfg = _cfg(epochs=12, learning_rate=0.3, early_stopping_patience=1)
    result = Trainer(dataset, cfg, "gmf", {"factors": 8}, tmp_path, progress=False).fit()
    ndcg = [h["val_ndcg@10"] for h in result.history]
    assert result.best_epoch == int(np.argmax(ndcg)) + 1
    assert len(ndcg) == result.best_epoch + 1 or len(ndcg) == 12
    assert result.metrics["validation_ndcg@10"] == max(ndcg)
    # the session holds the best epoch's weights: validation NDCG matches the recorded one
    val = dataset.eval_set("validation")
    m = val.negatives.shape[1]
    users = np.repeat(val.users, m + 1)
    items = np.concatenate([val.items[:, None], val.negatives], axis=1).reshape(-1)
    scores = score_pairs(result.session, result.model, users, items).reshape(-1, m + 1)
    assert ndcg_at_k(scores[:, 0], scores[:, 1:], 10) == pytest.approx(max(ndcg))


def test_popularity_baseline_by_hand(dataset):
    counts = np.zeros(dataset.n_items)
    counts[[3, 4]] = [5, 1]
    from training.data import EvalSet

    data = EvalSet(np.array([1, 2]), np.array([3, 4]), np.array([[4, 5], [3, 5]]))
    out = popularity_metrics(counts, data, k=1)
    assert out["hr@1"] == 0.5  # item 3 beats its negatives; item 4 loses to item 3


@pytest.mark.parametrize("model", ["neumf", "wide_deep", "deepfm", "fism"])
def test_loaded_export_scores_like_the_trained_model(dataset, tmp_path, model):
    params = {"neumf": PARAMS, "fism": {"factors": 4}}.get(model, {"embedding": 4, "layers": [8]})
    trainer = Trainer(dataset, _cfg(epochs=2), model, params, tmp_path / "ck", progress=False)
    result = trainer.fit()
    exported = export_model(result, dataset, trainer.seen, tmp_path / "repo", model, None)
    assert (exported.name, exported.version) == (model, 1)
    saved = load(tmp_path / "repo" / model / "1")
    rng = np.random.default_rng(0)
    users = rng.integers(0, dataset.n_users, 500).astype(np.int32)
    items = rng.integers(0, dataset.n_items, 500).astype(np.int32)
    inputs = {"user_idx": users, "item_idx": items}
    if result.model.has_history:  # fism: the signature takes each pair's history
        inputs["history"] = result.model.history_rows(users)
    got = saved.predict("serving_default", inputs)["score"]
    want = score_pairs(result.session, result.model, users, items)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32 and ((got >= 0) & (got <= 1)).all()
    metrics = json.loads(saved.assets["assets/metrics.json"] if "assets/metrics.json"
                         in saved.assets else saved.assets["metrics.json"])  # fmt: skip
    for key in ("hr@10", "ndcg@10", "recall@10", "auc", "logloss", "popularity_hr@10",
                "popularity_ndcg@10", "epochs", "best_epoch", "train_seconds",
                "train_samples_per_sec", "dataset_checksum", "validation_ndcg@10"):  # fmt: skip
        assert key in metrics, key
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("mode", ["train", "seen"])
def test_negative_exclusion_modes(dataset, tmp_path, mode):
    cfg = _cfg(epochs=1, negatives_exclude=mode)
    trainer = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path, progress=False)
    held_out = trainer.exclude.contains(trainer.test.users, trainer.test.items)
    # "train" keeps held-out items drawable as negatives: evaluation does not leak into training
    assert held_out.all() if mode == "seen" else not held_out.any()
    rng = np.random.default_rng(0)
    for users, items in trainer.train.epoch_chunks(rng):
        assert trainer.exclude.contains(users, items).all()


def test_popularity_baseline_skips_padded_negatives():
    from training.data import PAD_ITEM, EvalSet
    from training.trainer import popularity_metrics

    counts = np.array([0, 5, 1, 9, 3])
    # User 0's positive (item 1, count 5) is outranked by item 3 only; user 1 has one real
    # negative (item 2) and loses to nothing: ranks 1 and 0.
    data = EvalSet(
        users=np.array([0, 1], np.int32),
        items=np.array([1, 4], np.int32),
        negatives=np.array([[3, 2], [2, PAD_ITEM]], np.int32),
    )
    out = popularity_metrics(counts, data, k=1)
    assert out["hr@1"] == pytest.approx(0.5)
    # Pooled real negatives 9, 1, 1: positives 5 and 3 each beat both 1s -> 4 of 6 pairs.
    assert out["auc"] == pytest.approx(4 / 6)


def test_fism_history_is_the_dataset_history_and_never_a_held_out_item(dataset, tmp_path):
    n = dataset.n_users
    table = dataset.user_history().rows(np.arange(n))
    trainer = Trainer(dataset, _cfg(epochs=2), "fism", {"factors": 4}, tmp_path, progress=False)
    assert trainer.model.sequences is None  # FISM reads each user's newest items only
    np.testing.assert_array_equal(trainer.model.history_rows(np.arange(n)), table)
    trainer.cfg = _cfg(epochs=2, refit=True)
    trainer.fit()
    val = trainer.validation
    want = table.copy()
    want[val.users, 1:] = table[val.users, :-1]  # refit: the validation item is the newest
    want[val.users, 0] = val.items
    got = trainer.model.history_rows(np.arange(n))
    np.testing.assert_array_equal(got, want)
    assert not (got[trainer.test.users] == trainer.test.items[:, None]).any()
