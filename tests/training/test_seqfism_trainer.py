"""seqfism in the trainer: histories from the dataset and the training positives, refit, export."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.saved import load
from peppercorn.config import TrainingConfig
from training.data import DatasetError, open_dataset
from training.data.synthetic import write_synthetic_dataset
from training.export import export_model
from training.trainer import Trainer, score_pairs

PARAMS = {"factors": 4, "window": 3, "seq_length": 2}


def _cfg(**kw):
    base = dict(epochs=2, batch_size=64, learning_rate=0.01, l2=0.001, seed=7)
    base.update(kw)
    return TrainingConfig(**base)


def _shuffled_train(root, drop_ts=False):
    """Rewrite train/ in a random row order, with some equal timestamps, so file order != time."""
    folder = root / "features" / "train"
    table = pq.read_table(folder)
    frame = table.to_pandas().sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame["ts"] = frame["ts"].dt.floor("4s")  # about every other pair ties with a neighbour
    for path in folder.iterdir():
        path.unlink()
    out = pa.Table.from_pandas(frame, preserve_index=False)
    if drop_ts:
        out = out.drop(["ts"])
    half = out.num_rows // 2
    pq.write_table(out.slice(0, half), folder / "part-00000.parquet", row_group_size=50)
    pq.write_table(out.slice(half), folder / "part-00001.parquet", row_group_size=50)
    return frame


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    root = tmp_path_factory.mktemp("seqds")
    write_synthetic_dataset(root, users=30, items=40, per_user=10, eval_negatives=15)
    frame = _shuffled_train(root)
    return open_dataset(str(root)), frame


def _rows(history, n_users, width):
    return history.rows(np.arange(n_users), width)


def _oracle(frame, n_users, width):
    """pandas: newest first by time, then by the larger item index (the split's tie rule)."""
    ranked = frame.sort_values(["user_idx", "ts", "item_idx"], ascending=[True, False, False])
    out = np.zeros((n_users, width), np.int64)
    for user, rows in ranked.groupby("user_idx"):
        out[user, : len(rows)] = rows["item_idx"].to_numpy()[:width]
    return out


def test_sequences_follow_timestamps_not_file_order(shuffled, tmp_path):
    dataset, frame = shuffled
    trainer = Trainer(dataset, _cfg(), "seqfism", PARAMS, tmp_path, progress=False)
    want = _oracle(frame, dataset.n_users, 12)
    np.testing.assert_array_equal(_rows(trainer.model.sequences, dataset.n_users, 12), want)
    # The newest items come from the features stage's history table, as written.
    latest = dataset.user_history()
    np.testing.assert_array_equal(
        _rows(trainer.model.latest, dataset.n_users, 8), _rows(latest, dataset.n_users, 8)
    )


def test_refit_makes_each_validation_item_the_latest_and_never_sees_a_test_item(shuffled, tmp_path):
    dataset, frame = shuffled
    trainer = Trainer(dataset, _cfg(refit=True), "seqfism", PARAMS, tmp_path, progress=False)
    trainer.fit()
    val, n = trainer.validation, dataset.n_users
    for history, base, width in (
        (trainer.model.sequences, _oracle(frame, n, 12), 12),
        (trainer.model.latest, _rows(dataset.user_history(), n, 8), 8),
    ):
        want = base.copy()
        want[val.users, 1:] = base[val.users, :-1]  # every item one older
        want[val.users, 0] = val.items
        got = _rows(history, n, width)
        np.testing.assert_array_equal(got, want)
        assert not (got[trainer.test.users] == trainer.test.items[:, None]).any()


def test_loaded_export_scores_like_the_trained_model(shuffled, tmp_path):
    from peppercorn.model_repository import ModelRepository

    dataset, _ = shuffled
    trainer = Trainer(dataset, _cfg(refit=True), "seqfism", PARAMS, tmp_path / "ck", progress=False)
    result = trainer.fit()
    export_model(result, dataset, trainer.seen, tmp_path / "repo", "seqfism", None)
    saved = load(tmp_path / "repo" / "seqfism" / "1")
    assert "seqfism/position" not in {v.name for v in saved.graph.variables}
    assert saved.signatures["serving_default"]["inputs"]["history"]["shape"] == [-1, 8]
    rng = np.random.default_rng(0)
    users = rng.integers(0, dataset.n_users, 400).astype(np.int32)
    items = rng.integers(0, dataset.n_items, 400).astype(np.int32)
    # and every (user, item) of the history: a seen item is scored without itself
    latest = _rows(trainer.model.latest, dataset.n_users, 8)
    hist = np.argwhere(latest > 0)
    users = np.concatenate([users, hist[:, 0].astype(np.int32)])
    items = np.concatenate([items, latest[hist[:, 0], hist[:, 1]].astype(np.int32)])
    want = score_pairs(result.session, result.model, users, items)
    # The engine alone, fed the trained model's history rows ...
    history = result.model.history_rows(users)
    inputs = {"user_idx": users, "item_idx": items, "history": history}
    got = saved.predict("serving_default", inputs)["score"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # ... and the loaded version, from the history it exported, one user at a time.
    version = ModelRepository(str(tmp_path / "repo")).version("seqfism").open()
    np.testing.assert_array_equal(version.history_rows(users), history)
    np.testing.assert_allclose(version.score_pairs(users, items), want, rtol=1e-5, atol=1e-6)


def test_training_positives_without_timestamps_are_named(tmp_path):
    write_synthetic_dataset(tmp_path, users=10, items=20, per_user=6, eval_negatives=5)
    _shuffled_train(tmp_path, drop_ts=True)
    dataset = open_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="missing column 'ts'"):
        Trainer(dataset, _cfg(), "seqfism", PARAMS, tmp_path / "ck", progress=False)
    Trainer(dataset, _cfg(), "fism", {"factors": 2}, tmp_path / "ck2", progress=False)  # no ts
