"""bench.ncf_check: raw NCF test file -> export's vocabularies -> saved graph, by hand."""

import json

import numpy as np

import training.graph as ts
from bench.ncf_check import score_raw_test
from training.graph.saved import save

RAW_ITEMS = [str(i) for i in range(12)]


def _export(tmp_path, table: np.ndarray):
    """A saved graph whose score for (user_idx, item_idx) is table[user_idx, item_idx]."""
    graph = ts.Graph()
    with graph.as_default():
        user_idx = ts.placeholder(np.int32, shape=(None,), name="user_idx")
        item_idx = ts.placeholder(np.int32, shape=(None,), name="item_idx")
        scores = ts.Variable(table.astype(np.float32), name="scores")
        flat = ts.add(ts.multiply(user_idx, table.shape[1]), item_idx)
        score = ts.gather(ts.reshape(scores, [-1]), flat, name="score")
    session = ts.Session(graph)
    session.initialize_variables()
    vocab = {
        "user_id": ["<unk>", "0", "1"],
        "item_id": ["<unk>", *RAW_ITEMS],
    }
    assets = {f"vocab/{k}.json": json.dumps({"tokens": v}).encode() for k, v in vocab.items()}
    inputs = {"user_idx": user_idx, "item_idx": item_idx}
    signatures = {"serving_default": {"inputs": inputs, "outputs": {"score": score}}}
    return save(tmp_path / "1", session, signatures, assets=assets)


def test_hits_ties_and_misses_by_hand(tmp_path):
    table = np.zeros((3, 13))  # index = raw id + 1 (0 is unknown)
    # User "0": held-out "2" scores 0.5; "0" beats it, "1" ties it (a tie counts against the
    # held-out item), "3" and the rest (0) lose: rank 2, a hit, NDCG 1/log2(4) = 0.5.
    table[1, [1, 2, 3, 4]] = [0.9, 0.5, 0.5, 0.1]
    # User "1": held-out "5" scores 0.1 under all 11 other items: rank 11, a miss.
    table[2, :] = 0.2
    table[2, 6] = 0.1
    split = tmp_path / "split"
    split.mkdir()
    lines = [f"({u},{held})\t" + "\t".join(i for i in RAW_ITEMS if i != held) for u, held in
             (("0", "2"), ("1", "5"))]  # fmt: skip
    (split / "test.negative").write_text("\n".join(lines) + "\n")
    got = score_raw_test(_export(tmp_path, table), split)
    assert got["users"] == 2 and got["unknown_ids"] == 0
    assert got["hr@10"] == 0.5
    assert np.isclose(got["ndcg@10"], (0.5 + 0.0) / 2)
