"""ML-100K format: a 6-user folder with one broken line of each kind, and its clean tables."""

from __future__ import annotations

import datetime as dt

import pytest

import etl
from tests.etl.conftest import (
    expected_summary,
    make_config,
    quarantine_counts,
    summary_of,
    write_lines,
)

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
          "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
          "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


USERS = [
    ("1|24|M|technician|85711", None),
    ("2|53|F|other|94043", None),
    ("3|17|M|student|T8H1N", None),
    ("4|56|F|writer|32067", None),
    ("5|33|M|engineer|15213", None),
    ("6|45|F|doctor|02139", None),
    ("7|abc|M|writer|12345", "bad_age"),
    ("8|30|X|writer|12345", "bad_gender"),
    ("9|30|M", "malformed_line"),
    ("1|24|M|technician|85711", "duplicate"),
]
ITEMS = [
    (f"1|Toy Story (1995)|01-Jan-1995||http://x/1|{flags(3, 4, 5)}", None),
    (f"2|Café Society (1996)|4-Feb-1996||http://x/2|{flags(8)}", None),
    (f"3|unknown||||{flags(0)}", None),
    (f"4|Heat (1995)|15-Dec-1995||http://x/4|{flags(1, 6, 16)}", None),
    (f"5|Bad Date (1990)|31-Foo-1990||http://x/5|{flags(8)}", "bad_release_date"),
    (f"x|No Id (1990)|01-Jan-1990||http://x/x|{flags(8)}", "bad_item_id"),
    ("6|Short|01-Jan-1990", "malformed_line"),
    (f"7|Bad Flag (1990)|01-Jan-1990||http://x/7|{flags(8).replace('1', '2')}", "bad_genre_flag"),
]
T0 = 881250949  # 1997-11-04 UTC
DAY = 86400
RATINGS = [
    (f"1\t1\t5\t{T0}", None),
    (f"1\t2\t3\t{T0 + DAY}", None),
    (f"2\t1\t4\t{T0}", None),
    (f"3\t4\t1\t{T0 + 2 * DAY}", None),
    (f"4\t3\t2\t{T0 + 3 * DAY}", None),
    (f"5\t4\t5\t{T0}", None),
    (f"6\t2\t4\t{T0 + DAY}", None),
    (f"1\t1\t4\t{T0 + 5 * DAY}", None),  # a re-rating at another time is a new event
    (f"1\t1\t5\t{T0}", "duplicate"),
    (f"99\t1\t5\t{T0}", "unknown_user"),
    (f"7\t1\t5\t{T0}", "unknown_user"),  # user 7 was quarantined
    (f"1\t5\t5\t{T0}", "unknown_item"),  # item 5 was quarantined
    (f"2\t77\t5\t{T0}", "unknown_item"),
    (f"2\t2\t6\t{T0}", "rating_out_of_range"),
    (f"2\t2\tx\t{T0}", "bad_rating"),
    ("2\t2\t3\tnoon", "bad_timestamp"),
    ("2 2 3 881250949", "malformed_line"),
    ("", "empty_line"),
    (f"x\t2\t3\t{T0}", "bad_user_id"),
]


@pytest.fixture(scope="module")
def ml100k(spark, tmp_path_factory):
    src = tmp_path_factory.mktemp("ml100k")
    write_lines(src / "u.user", [line for line, _ in USERS], "latin-1")
    write_lines(src / "u.item", [line for line, _ in ITEMS], "latin-1")
    write_lines(src / "u.data", [line for line, _ in RATINGS])
    write_lines(src / "u.genre", [f"{g}|{i}" for i, g in enumerate(GENRES)] + [""])
    out = tmp_path_factory.mktemp("out")
    cfg = make_config(out, "movielens-100k", src)
    result = etl.run(cfg, spark)
    return cfg, out / cfg.dataset.name, result


def test_summary_counts_every_line_once(ml100k, spark):
    cfg, root, result = ml100k
    expected = {
        "users": expected_summary(USERS),
        "items": expected_summary(ITEMS),
        "events": expected_summary(RATINGS),
    }
    assert summary_of(root) == expected
    assert result["tables"] == expected
    for table, counts in expected.items():
        assert quarantine_counts(spark, result["output"], table) == counts["quarantined"]
        assert counts["read"] == counts["kept"] + sum(counts["quarantined"].values())


def test_quarantine_keeps_the_raw_line(ml100k, spark):
    _, _, result = ml100k
    q = spark.read.parquet(f"{result['output']}/quarantine").toPandas()
    got = sorted(zip(q["source"], q["raw"], q["reason"], strict=True))
    want = sorted(
        [("users", line, r) for line, r in USERS if r]
        + [("items", line, r) for line, r in ITEMS if r]
        + [("events", line, r) for line, r in RATINGS if r]
    )
    assert got == want


def test_users_get_bands_and_zip_regions(ml100k, spark):
    _, _, result = ml100k
    users = spark.read.parquet(f"{result['output']}/users").toPandas().set_index("user_id")
    assert sorted(users.index) == ["1", "2", "3", "4", "5", "6"]
    assert users.loc["1"].to_dict() == {
        "age_band": "18-24", "gender": "M", "occupation": "technician", "zip_prefix": "8"
    }  # fmt: skip
    assert users.loc["3", "age_band"] == "under_18" and users.loc["3", "zip_prefix"] == "T"
    assert users.loc["4", "age_band"] == "56+" and users.loc["6", "age_band"] == "45-49"


def test_items_decode_latin1_titles_genres_and_dates(ml100k, spark):
    _, _, result = ml100k
    items = spark.read.parquet(f"{result['output']}/items").toPandas().set_index("item_id")
    assert sorted(items.index) == ["1", "2", "3", "4"]
    assert items.loc["2", "title"] == "Café Society (1996)"
    assert items.loc["2", "created"] == dt.date(1996, 2, 4)
    assert list(items.loc["1", "categories"]) == ["Animation", "Children's", "Comedy"]
    assert list(items.loc["4", "categories"]) == ["Action", "Crime", "Thriller"]
    assert items.loc["3", "created"] is None and list(items.loc["3", "tags"]) == []


def test_events_are_kept_ratings_partitioned_by_day(ml100k, spark):
    _, root, result = ml100k
    events = spark.read.parquet(f"{result['output']}/events").toPandas()
    got = sorted(
        (r.user_id, r.item_id, r.rating, r.ts.to_pydatetime().replace(tzinfo=None), str(r.dt))
        for r in events.itertuples()
    )
    want = []
    for line, reason in RATINGS:
        if reason is None:
            u, i, rating, seconds = line.split("\t")
            ts = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(seconds))
            want.append((u, i, float(rating), ts, ts.date().isoformat()))
    assert got == sorted(want)
    assert set(events["event"]) == {"rating"}
    days = sorted(p.name for p in (root / "clean" / "events").iterdir() if p.is_dir())
    assert days == sorted({f"dt={w[4]}" for w in want})


@pytest.mark.shared
def test_real_ml100k_keeps_every_rating(spark, shared_datasets, tmp_path):
    import pandas as pd

    src = shared_datasets / "ml-100k"
    ratings = pd.read_csv(src / "u.data", sep="\t", names=["u", "i", "r", "t"])
    n_users = len(pd.read_csv(src / "u.user", sep="|", header=None, encoding="latin-1"))
    n_items = len(pd.read_csv(src / "u.item", sep="|", header=None, encoding="latin-1"))
    result = etl.run(make_config(tmp_path, "movielens-100k", src), spark)
    tables = result["tables"]
    assert tables["events"] == {"read": len(ratings), "kept": len(ratings), "quarantined": {}}
    assert tables["users"]["kept"] == n_users and tables["items"]["kept"] == n_items
    days = pd.to_datetime(ratings["t"], unit="s").dt.strftime("%Y-%m-%d").unique()
    events = spark.read.parquet(f"{result['output']}/events")
    assert events.select("dt").distinct().count() == len(days)
    per_user = events.groupBy("user_id").count().toPandas().set_index("user_id")["count"]
    want = ratings.groupby("u").size()
    assert per_user.sort_index().to_dict() == {str(k): v for k, v in want.items()}
