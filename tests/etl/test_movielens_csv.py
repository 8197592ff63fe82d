"""MovieLens CSV format: quoted titles with commas, half stars, sparse ids, tags."""

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

MOVIES = [
    ("1,Toy Story (1995),Adventure|Animation|Children", None),
    ('11,"American President, The (1995)",Comedy|Drama|Romance', None),
    ('5000,"Movie with ""quotes"", and commas (2001)",(no genres listed)', None),
    ("70000,Untitled Year,Documentary", None),
    ('12,"Unclosed title (1999),Drama', "malformed_csv"),
    ("abc,Bad Id (1999),Drama", "bad_item_id"),
    ("13,,Drama", "missing_title"),
    ("1,Toy Story (1995),Adventure|Animation|Children", "duplicate"),
    ("14,Too,Many,Fields", "malformed_csv"),
]
RATINGS = [
    ("1,1,4.0,964982703", None),
    ("1,11,4.5,964981247", None),
    ("7,5000,0.5,1139045764", None),
    ("7,70000,5.0,1139045790", None),
    ("100000,1,3.5,964982703", None),
    ("1,1,4.0,964982703", "duplicate"),
    ("1,11,5.5,964981247", "rating_out_of_range"),
    ("1,11,4.25,964981247", "rating_out_of_range"),
    ("1,11,0,964981247", "rating_out_of_range"),
    ("1,12,4.0,964981247", "unknown_item"),  # movie 12's line was malformed
    ("1,999,4.0,964981247", "unknown_item"),
    ("x,1,4.0,964981247", "bad_user_id"),
    ("1,1,four,964981247", "bad_rating"),
    ("1,1,4.0,-5", "bad_timestamp"),
    ("1,1,4.0", "malformed_csv"),
]
TAGS = [
    ("1,1,pixar,1139045764", None),
    ("7,1,Pixar ,1139045765", None),
    ('7,11,"funny, political",1139045766', None),
    ("7,1,pixar,1139045764", None),
    ("7,999,pixar,1139045764", "unknown_item"),
    ("7,1,,1139045764", "missing_tag"),
    ("1,1,pixar,1139045764", "duplicate"),
]


@pytest.fixture(scope="module")
def mlcsv(spark, tmp_path_factory):
    src = tmp_path_factory.mktemp("mlcsv")
    write_lines(src / "movies.csv", ["movieId,title,genres"] + [m for m, _ in MOVIES])
    write_lines(src / "ratings.csv", ["userId,movieId,rating,timestamp"] + [r for r, _ in RATINGS])
    write_lines(src / "tags.csv", ["userId,movieId,tag,timestamp"] + [t for t, _ in TAGS])
    out = tmp_path_factory.mktemp("out")
    cfg = make_config(out, "movielens-csv", src)
    return out / cfg.dataset.name, etl.run(cfg, spark)


def test_summary_and_quarantine(mlcsv, spark):
    root, result = mlcsv
    expected = {
        "items": expected_summary(MOVIES),
        "tags": expected_summary(TAGS),
        "events": expected_summary(RATINGS),
    }
    assert summary_of(root) == expected
    for table, counts in expected.items():
        assert quarantine_counts(spark, result["output"], table) == counts["quarantined"]


def test_items_parse_quoted_titles_years_genres_and_tags(mlcsv, spark):
    _, result = mlcsv
    items = spark.read.parquet(f"{result['output']}/items").toPandas().set_index("item_id")
    assert sorted(items.index) == ["1", "11", "5000", "70000"]
    assert items.loc["11", "title"] == "American President, The (1995)"
    assert items.loc["5000", "title"] == 'Movie with "quotes", and commas (2001)'
    assert list(items.loc["5000", "categories"]) == []
    assert list(items.loc["1", "categories"]) == ["Adventure", "Animation", "Children"]
    assert items.loc["1", "created"] == dt.date(1995, 1, 1)
    assert items.loc["70000", "created"] is None
    assert list(items.loc["1", "tags"]) == ["pixar"]
    assert list(items.loc["11", "tags"]) == ["funny, political"]
    assert list(items.loc["70000", "tags"]) == []


def test_ratings_and_derived_users(mlcsv, spark):
    _, result = mlcsv
    events = spark.read.parquet(f"{result['output']}/events").toPandas()
    rows = events.itertuples()
    got = sorted((r.user_id, r.item_id, r.rating, int(r.ts.timestamp())) for r in rows)
    want = sorted(
        (u, i, float(r), int(t))
        for u, i, r, t in (line.split(",") for line, reason in RATINGS if reason is None)
    )
    assert got == want
    users = spark.read.parquet(f"{result['output']}/users").toPandas()
    assert sorted(users["user_id"]) == ["1", "100000", "7"]
    assert list(users.columns) == ["user_id"]
