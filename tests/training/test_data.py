"""The §3 dataset reader, the negative sampler and batching, against pandas/pyarrow oracles."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from training.data import DatasetError, batches, open_dataset, sample_negatives, with_negatives
from training.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_synthetic_dataset(root, users=30, items=40, per_user=10, eval_negatives=15)
    return root


def _pairs(folder):
    df = pq.read_table(folder).to_pandas()
    return set(zip(df.user_idx, df.item_idx, strict=True))


def test_sizes_and_eval_sets(dataset_root):
    ds = open_dataset(str(dataset_root))
    assert (ds.n_users, ds.n_items) == (31, 41)
    val = ds.eval_set("validation")
    oracle = pq.read_table(dataset_root / "features/validation").to_pandas()
    oracle = oracle.sort_values("user_idx").reset_index(drop=True)
    assert val.users.tolist() == oracle.user_idx.tolist()
    assert val.items.tolist() == oracle.item_idx.tolist()
    assert val.negatives.tolist() == [list(r) for r in oracle.negatives]


@pytest.mark.parametrize("budget", [10**9, 8 * 130])
def test_epoch_covers_every_positive_once(dataset_root, budget):
    ds = open_dataset(str(dataset_root))
    train = ds.train_positives(budget)
    assert train.streamed == (budget < 10**6)
    oracle = pq.read_table(dataset_root / "features/train").to_pandas()
    rng = np.random.default_rng(1)
    epochs = []
    for _ in range(2):
        chunks = list(train.epoch_chunks(rng))
        if train.streamed:
            assert len(chunks) > 1 and max(len(u) for u, _ in chunks) <= train.budget_rows
        users = np.concatenate([u for u, _ in chunks])
        items = np.concatenate([i for _, i in chunks])
        got = pd.DataFrame({"u": users, "i": items}).sort_values(["u", "i"])
        want = oracle[["user_idx", "item_idx"]].sort_values(["user_idx", "item_idx"])
        assert got.to_numpy().tolist() == want.to_numpy().tolist()
        epochs.append(users)
    assert not np.array_equal(epochs[0], epochs[1]), "each epoch must be shuffled afresh"


def test_seen_membership_matches_pandas(dataset_root):
    ds = open_dataset(str(dataset_root))
    seen = ds.seen()
    truth = _pairs(dataset_root / "features/seen")
    users, items = np.meshgrid(np.arange(31), np.arange(41), indexing="ij")
    got = seen.contains(users.ravel(), items.ravel())
    want = np.array([(u, i) in truth for u, i in zip(users.ravel(), items.ravel(), strict=True)])
    assert np.array_equal(got, want)


def test_negatives_are_unseen_real_items(dataset_root):
    ds = open_dataset(str(dataset_root))
    seen = ds.seen()
    truth = _pairs(dataset_root / "features/seen")
    users = np.repeat(np.arange(1, 31, dtype=np.int32), 50)
    negs = sample_negatives(users, seen, 4, np.random.default_rng(0))
    assert negs.shape == (users.size, 4)
    assert negs.min() >= 1 and negs.max() <= 40
    assert not any((u, i) in truth for u, row in zip(users, negs, strict=True) for i in row)
    # every unseen item of user 1 is reachable
    unseen_1 = {i for i in range(1, 41) if (1, i) not in truth}
    assert set(negs[users == 1].ravel()) == unseen_1


def test_with_negatives_and_batches(dataset_root):
    ds = open_dataset(str(dataset_root))
    users = np.array([1, 2, 3], np.int32)
    items = np.array([5, 6, 7], np.int32)
    rows = with_negatives(users, items, ds.seen(), 3, np.random.default_rng(0))
    assert len(rows) == 12 and rows.labels.sum() == 3
    positives = {(u, i) for u, i, y in zip(rows.users, rows.items, rows.labels, strict=True) if y}
    assert positives == {(1, 5), (2, 6), (3, 7)}
    # Each row's anchor is the positive it was drawn for: its own item for a positive, the
    # same user's positive for a negative (users 1..3 have one positive each here).
    own = {1: 5, 2: 6, 3: 7}
    assert [int(a) for a in rows.anchors] == [own[int(u)] for u in rows.users]
    cut = list(batches(rows, 5))
    assert [len(b) for b in cut] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([b.anchors for b in cut]), rows.anchors)


def test_user_who_saw_everything_is_named(dataset_root):
    from training.data import SeenItems

    seen = SeenItems.from_pairs(np.full(3, 1), np.array([1, 2, 3]), n_users=2, n_items=4)
    with pytest.raises(ValueError, match="user_idx 1 has seen every item"):
        sample_negatives(np.array([1]), seen, 2, np.random.default_rng(0))


def test_missing_dataset_says_run_etl(tmp_path):
    with pytest.raises(DatasetError, match=r"run `make etl` first: .*manifest.json not found"):
        open_dataset(str(tmp_path))


def test_out_of_range_index_is_named(tmp_path):
    write_synthetic_dataset(tmp_path, users=5, items=10, per_user=4, eval_negatives=3)
    vocab = tmp_path / "features/vocab/item_id.json"
    body = json.loads(vocab.read_text())
    body["tokens"] = body["tokens"][:5]
    vocab.write_text(json.dumps(body))
    with pytest.raises(DatasetError, match="index out of range"):
        open_dataset(str(tmp_path)).eval_set("test")


def test_short_negative_rows_are_padded_and_scored_absent(tmp_path):
    import pyarrow as pa

    root = tmp_path / "ds"
    write_synthetic_dataset(root, users=6, items=8, per_user=3, eval_negatives=4)
    # Rewrite validation so one user has only two negatives (catalogue nearly all seen).
    path = root / "features/validation"
    table = pq.read_table(path)
    negs = [list(r) for r in table.column("negatives").to_pylist()]
    negs[0] = negs[0][:2]
    for f in path.glob("*.parquet"):
        f.unlink()
    table = table.set_column(
        table.schema.get_field_index("negatives"), "negatives", pa.array(negs, pa.list_(pa.int32()))
    )
    pq.write_table(table, path / "part-0.parquet")
    val = open_dataset(str(root)).eval_set("validation")
    order = np.argsort(table.column("user_idx").to_numpy(), kind="stable")
    short = int(np.flatnonzero(order == 0)[0])
    assert val.negatives.shape[1] == 4
    assert val.negatives[short].tolist() == negs[0] + [-1, -1]
