"""NCF pre-split files, with and without an ML-100K side folder (ids shifted by one)."""

from __future__ import annotations

import pytest

import etl
from tests.etl.conftest import expected_summary, make_config, summary_of, write_lines
from tests.etl.test_movielens import flags

TRAIN = [
    ("0\t0\t5\t874965758", None),
    ("0\t1\t3\t876893171", None),
    ("1\t0\t4\t874965758", None),
    ("2\t2\t1\t874965758", None),
    ("0\t0\t5\t874965758", "duplicate"),
    ("9\t0\t5\t874965758", "unknown_user"),  # side folder has users 1..3 = ncf 0..2
    ("0\t7\t5\t874965758", "unknown_item"),
    ("0\t1", "malformed_line"),
    ("-1\t1\t3\t876893171", "bad_user_id"),
]
TEST = [
    ("0\t2\t2\t889751736", None),
    ("1\t1\t3\t888980240", None),
    ("2\t0\t3\t888980240", "missing_negatives"),
]
NEGATIVES = [
    ("(0,2)\t1\t0\t3", None),
    ("(1,1)\t2\t3\t0", None),
    ("(5,5)\t1\t2\t3", "unmatched_test_pair"),
    ("(2,0\t1\t2", "malformed_line"),
]
USERS = ["1|24|M|technician|85711", "2|53|F|other|94043", "3|23|M|writer|32067"]
ITEMS = [f"{k}|Movie {k} (1995)|01-Jan-1995||http://x|{flags(k)}" for k in range(1, 5)]


def write_ncf(src):
    write_lines(src / "train.rating", [line for line, _ in TRAIN])
    write_lines(src / "test.rating", [line for line, _ in TEST])
    write_lines(src / "test.negative", [line for line, _ in NEGATIVES])


@pytest.fixture(scope="module")
def ncf_side(spark, tmp_path_factory):
    src, side = tmp_path_factory.mktemp("ncf"), tmp_path_factory.mktemp("side")
    write_ncf(src)
    write_lines(side / "u.user", USERS)
    write_lines(side / "u.item", ITEMS)
    out = tmp_path_factory.mktemp("out")
    cfg = make_config(out, "ncf", src, side_path=str(side))
    return out / cfg.dataset.name, etl.run(cfg, spark)


def test_summary_counts_with_side_tables(ncf_side):
    root, _ = ncf_side
    assert summary_of(root) == {
        "users": {"read": 3, "kept": 3, "quarantined": {}},
        "items": {"read": 4, "kept": 4, "quarantined": {}},
        "events": expected_summary(TRAIN),
        "test_rating": expected_summary(TEST),
        "test_negative": expected_summary(NEGATIVES),
    }


def test_side_ids_shift_to_zero_based(ncf_side, spark):
    _, result = ncf_side
    users = spark.read.parquet(f"{result['output']}/users").toPandas().set_index("user_id")
    assert sorted(users.index) == ["0", "1", "2"]
    assert users.loc["0", "occupation"] == "technician"  # ML-100K user 1
    items = spark.read.parquet(f"{result['output']}/items").toPandas().set_index("item_id")
    assert items.loc["0", "title"] == "Movie 1 (1995)"
    assert list(items.loc["3", "categories"]) == ["Children's"]  # ML-100K item 4: genre 4


def test_test_split_is_kept_as_given(ncf_side, spark):
    _, result = ncf_side
    test = spark.read.parquet(f"{result['output']}/ncf/test").toPandas()
    got = sorted((r.user_id, r.item_id, list(r.negatives)) for r in test.itertuples())
    assert got == [("0", "2", ["1", "0", "3"]), ("1", "1", ["2", "3", "0"])]
    events = spark.read.parquet(f"{result['output']}/events").toPandas()
    assert sorted(zip(events.user_id, events.item_id, strict=True)) == [
        ("0", "0"), ("0", "1"), ("1", "0"), ("2", "2")
    ]  # fmt: skip


def test_without_side_folder_ids_come_from_the_files(spark, tmp_path):
    src = tmp_path / "ncf"
    write_ncf(src)
    cfg = make_config(tmp_path / "out", "ncf", src)
    result = etl.run(cfg, spark)
    summary = result["tables"]
    # Without side tables no id is unknown: the two lines rejected for that now pass.
    assert summary["events"]["quarantined"] == {
        "bad_user_id": 1, "duplicate": 1, "malformed_line": 1
    }  # fmt: skip
    users = spark.read.parquet(f"{result['output']}/users").toPandas()
    assert sorted(users["user_id"]) == ["0", "1", "2", "9"]
    items = spark.read.parquet(f"{result['output']}/items").toPandas()
    assert sorted(items["item_id"]) == ["0", "1", "2", "3", "7"]
    assert items["title"].isna().all()
