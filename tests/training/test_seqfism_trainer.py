"""seqfism in the trainer: time-ordered tables from the training positives, refit, export."""

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


def _positions(trainer):
    var = next(v for v in trainer.model.graph.variables if v.name == "seqfism/position")
    return trainer.session.get_value(var)


def _oracle(frame, n_users, n_items):
    """pandas: newest first by time, then by the larger item index (the split's tie rule)."""
    ranked = frame.sort_values(["user_idx", "ts", "item_idx"], ascending=[True, False, False])
    ranked["pos"] = ranked.groupby("user_idx").cumcount() + 1
    out = np.zeros((n_users, n_items), np.int64)
    out[ranked["user_idx"], ranked["item_idx"]] = ranked["pos"]
    return out


def test_tables_follow_timestamps_not_file_order(shuffled, tmp_path):
    dataset, frame = shuffled
    trainer = Trainer(dataset, _cfg(), "seqfism", PARAMS, tmp_path, progress=False)
    want = _oracle(frame, dataset.n_users, dataset.n_items)
    np.testing.assert_array_equal(_positions(trainer), want)


def test_refit_makes_each_validation_item_the_latest_and_never_sees_a_test_item(shuffled, tmp_path):
    dataset, frame = shuffled
    trainer = Trainer(dataset, _cfg(refit=True), "seqfism", PARAMS, tmp_path, progress=False)
    trainer.fit()
    want = _oracle(frame, dataset.n_users, dataset.n_items)
    val = trainer.validation
    want[val.users] += (want[val.users] > 0).astype(np.int64)  # every train item one older
    want[val.users, val.items] = 1
    got = _positions(trainer)
    np.testing.assert_array_equal(got, want)
    assert not got[trainer.test.users, trainer.test.items].any()


def test_loaded_export_scores_like_the_trained_model(shuffled, tmp_path):
    dataset, _ = shuffled
    trainer = Trainer(dataset, _cfg(refit=True), "seqfism", PARAMS, tmp_path / "ck", progress=False)
    result = trainer.fit()
    export_model(result, dataset, trainer.seen, tmp_path / "repo", "seqfism", None)
    saved = load(tmp_path / "repo" / "seqfism" / "1")
    rng = np.random.default_rng(0)
    users = rng.integers(0, dataset.n_users, 400).astype(np.int32)
    items = rng.integers(0, dataset.n_items, 400).astype(np.int32)
    # and every (user, item) of the history, whose scores use the item's own position
    hist = np.argwhere(_positions(trainer) > 0)
    users = np.concatenate([users, hist[:, 0].astype(np.int32)])
    items = np.concatenate([items, hist[:, 1].astype(np.int32)])
    got = saved.predict("serving_default", {"user_idx": users, "item_idx": items})["score"]
    want = score_pairs(result.session, result.model, users, items)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_training_positives_without_timestamps_are_named(tmp_path):
    write_synthetic_dataset(tmp_path, users=10, items=20, per_user=6, eval_negatives=5)
    _shuffled_train(tmp_path, drop_ts=True)
    dataset = open_dataset(str(tmp_path))
    with pytest.raises(DatasetError, match="missing column 'ts'"):
        Trainer(dataset, _cfg(), "seqfism", PARAMS, tmp_path / "ck", progress=False)
    Trainer(dataset, _cfg(), "fism", {"factors": 2}, tmp_path / "ck2", progress=False)  # no ts
