"""bench.ncf_check: raw NCF test file -> export's vocabularies -> saved graph, by hand."""

import numpy as np

from bench.ncf_check import score_raw_test
from tests.table_version import table_version

RAW_ITEMS = [str(i) for i in range(12)]


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
    version = table_version(tmp_path, "m", 1, table, ["<unk>", "0", "1"], ["<unk>", *RAW_ITEMS])
    got = score_raw_test(version, split)
    assert got["users"] == 2 and got["unknown_ids"] == 0
    assert got["hr@10"] == 0.5
    assert np.isclose(got["ndcg@10"], (0.5 + 0.0) / 2)
