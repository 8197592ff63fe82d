"""Users' histories on the host: the features table read back, and the windows cut from it.

Oracles: pandas over the train split for the dataset reader, hand-worked rows otherwise.
"""

import numpy as np
import pandas as pd
import pytest

from training.data import DatasetError, UserHistory, open_dataset
from training.data.synthetic import write_synthetic_dataset

# user 1: items 4 (t=1), 2 (t=3), 7 (t=3), 5 (t=9), 4 again (t=10); user 2: 3 (t=2); user 3: none
USERS = np.array([1, 1, 1, 1, 1, 2])
ITEMS = np.array([4, 2, 7, 5, 4, 3])
ORDER = np.array([1, 3, 3, 9, 10, 2])


def test_from_events_orders_newest_first_breaks_ties_and_keeps_a_repeat_once():
    h = UserHistory.from_events(USERS, ITEMS, ORDER, n_users=4)
    # Newest first: 4 (t=10, its older t=1 occurrence dropped), 5, then the tie at t=3 with
    # the larger item (7) newer, then 2.
    np.testing.assert_array_equal(h.rows([1, 2, 3, 0], width=5), [
        [4, 5, 7, 2, 0], [3, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0],
    ])  # fmt: skip


def test_the_cap_keeps_the_newest_items_and_rows_pad_or_cut():
    h = UserHistory.from_events(USERS, ITEMS, ORDER, n_users=4, length=2)
    np.testing.assert_array_equal(h.indptr, [0, 0, 2, 3, 3])
    np.testing.assert_array_equal(h.rows([1, 2]), [[4, 5], [3, 0]])
    np.testing.assert_array_equal(h.rows([1], width=1), [[4]])
    np.testing.assert_array_equal(h.rows([9, -1]), [[0, 0], [0, 0]])  # beyond the table: empty


def test_with_newest_puts_the_item_first_and_caps_again():
    h = UserHistory.from_events(USERS, ITEMS, ORDER, n_users=4, length=3)  # 1: [4, 5, 7]
    pushed = h.with_newest(np.array([1, 3, 2]), np.array([6, 1, 3]))
    np.testing.assert_array_equal(pushed.rows([1, 2, 3]), [[6, 4, 5], [3, 0, 0], [1, 0, 0]])


def test_around_cuts_older_newest_first_and_newer_oldest_first():
    h = UserHistory.from_events(USERS, ITEMS, ORDER, n_users=4)  # 1: [4, 5, 7, 2]
    older, newer = h.around(np.array([1, 1, 1, 2]), np.array([7, 4, 9, 3]), before=3, after=2)
    # 7 sits at place 2: older items 2; newer items 5 then 4. 4 is the newest: nothing newer.
    # 9 is not in the row: it sits after the newest item. 3 is user 2's only item.
    np.testing.assert_array_equal(older, [[2, 0, 0], [5, 7, 2], [4, 5, 7], [0, 0, 0]])
    np.testing.assert_array_equal(newer, [[5, 4], [0, 0], [0, 0], [0, 0]])


def test_from_events_refuses_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="differ in length"):
        UserHistory.from_events(USERS, ITEMS[:2], ORDER, n_users=4)


def test_the_dataset_history_is_the_newest_training_items(tmp_path):
    write_synthetic_dataset(tmp_path, users=12, items=30, per_user=10, history_length=5)
    dataset = open_dataset(str(tmp_path))
    got = dataset.user_history()
    assert got.length == dataset.history_length == 5
    train = pd.read_parquet(tmp_path / "features" / "train")
    for user in range(dataset.n_users):
        rows = train[train.user_idx == user].sort_values(["ts", "item_idx"], ascending=False)
        want = rows.item_idx.tolist()[:5]
        assert got.rows([user])[0].tolist() == want + [0] * (5 - len(want)), user


def test_a_history_row_above_the_cap_is_refused(tmp_path):
    write_synthetic_dataset(
        tmp_path, users=4, items=30, per_user=8, eval_negatives=5, history_length=5
    )
    manifest = tmp_path / "features" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"history_length": 5', '"history_length": 2'))
    with pytest.raises(DatasetError, match="above the manifest's history_length 2"):
        open_dataset(str(tmp_path)).user_history()
