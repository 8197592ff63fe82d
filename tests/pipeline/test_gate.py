"""The promotion gate's decisions and the serving version's rescoring, worked by hand."""

import numpy as np
import pytest

from pipeline.gate import decide, index_map, rescore
from tests.table_version import table_version
from training.data import PAD_ITEM, EvalSet


@pytest.mark.parametrize(
    ("candidate", "serving", "margin", "promote"),
    [
        (0.30, 0.30, 0.0, True),  # equal is not worse (and the candidate knows newer data)
        (0.295, 0.30, 0.01, True),  # worse, but within the margin
        (0.289, 0.30, 0.01, False),  # worse by more than the margin
        (0.35, 0.30, 0.0, True),
    ],
)
def test_margin(candidate, serving, margin, promote):
    d = decide(candidate, serving, 4, margin)
    assert d["promote"] is promote
    assert d["reason"].startswith("promoted" if promote else "refused")
    assert (d["serving_version"], d["serving"], d["candidate"]) == (4, serving, candidate)
    assert (d["metric"], d["split"]) == ("ndcg@10", "test")


def test_without_a_comparable_serving_version_the_candidate_passes():
    d = decide(0.1, None, None, 0.0)
    assert d["promote"] and d["reason"] == "no serving version: promoted"
    d = decide(0.1, None, 3, 0.0, "serving version 3 does not load (SavedGraphError: x)")
    assert d["promote"] and d["reason"].startswith("serving version 3 does not load")


def test_index_map_follows_raw_ids():
    today = ["<unk>", "a", "b", "c"]
    serving = ["<unk>", "b", "a", "z"]  # other order, no "c", an id today lacks
    np.testing.assert_array_equal(index_map(today, serving), [0, 2, 1, 0])


def test_rescore_scores_todays_rows_in_the_serving_index_space(tmp_path):
    # The serving version knows users u1, u2 and items a, b, c in its own order; its scores:
    # u1: a 0.9, b 0.1, c 0.5, unknown 0.0;  u2: a 0.2, b 0.8, c 0.3, unknown 0.6.
    serving_items = ["<unk>", "c", "a", "b"]
    table = [[0, 0, 0, 0], [0.0, 0.5, 0.9, 0.1], [0.6, 0.3, 0.2, 0.8]]
    serving = table_version(tmp_path, "m", 3, table, ["<unk>", "u1", "u2"], serving_items).open()
    # Today's vocabularies: another order and a new item "d" (unknown to the serving version).
    vocabs = {"user_id": {"tokens": ["<unk>", "u2", "u1"]},
              "item_id": {"tokens": ["<unk>", "a", "b", "c", "d"]}}  # fmt: skip
    # u1 held out "c" against a, b: a beats it -> rank 1 (NDCG 1/log2(3)).
    # u2 held out "a" against d (unknown: 0.6), b, and a padded slot: rank 2 (NDCG 1/2).
    data = EvalSet(
        users=np.array([2, 1], np.int32),
        items=np.array([3, 1], np.int32),
        negatives=np.array([[1, 2, PAD_ITEM], [4, 2, PAD_ITEM]], np.int32),
    )
    got = rescore(serving, vocabs, data)
    assert got["hr@10"] == 1.0
    assert got["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / 2)
