"""The NCF paper's pre-split files (`train.rating`, `test.rating`, `test.negative`), as given.

Ids are the paper's 0-based integers, kept as strings ("0").  `train.rating` becomes the
clean events; `test.rating` joined with `test.negative` becomes `clean/ncf/test`.  With a
side folder (ML-100K's `u.user`/`u.item`), users and items take its profiles, mapping
ML-100K id `k` to NCF id `k - 1`; without one, users and items are the ids the files use,
with no features.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.lines import read_lines, require
from etl.sources import movielens
from etl.tables import OUTCOME, Transformed, empty_strings, item_columns, kept
from etl.validate import as_int, blank, first_failure, mark_duplicates
from peppercorn.config import join_uri

__all__ = ["extract", "transform"]

_NEGATIVE_LINE = r"^\((\d+),(\d+)\)\t(.*)$"


def extract(spark, uri: str, side_uri: str | None = None) -> dict[str, DataFrame]:
    """The three NCF files as lines, plus ML-100K's users and items when `side_uri` is set."""
    require(spark, uri, "NCF folder")
    tables = {
        name: read_lines(spark, require(spark, join_uri(uri, file), file))
        for name, file in (
            ("events", "train.rating"),
            ("test_rating", "test.rating"),
            ("test_negative", "test.negative"),
        )
    }
    if side_uri is not None:
        side = movielens.extract(spark, side_uri, side_only=True)
        tables["users"], tables["items"] = side["users"], side["items"]
    return tables


def transform(raw: dict[str, DataFrame], genres: list[str] | None = None) -> Transformed:
    """Classify every line; clean events, the given test split, users and items."""
    tables: dict[str, DataFrame] = {}
    users = items = None
    if "users" in raw:
        tables["users"] = movielens.users_frame(raw["users"], id_offset=-1)
        tables["items"] = movielens.items_frame(
            raw["items"], genres or list(movielens.GENRES), id_offset=-1
        )
        users, items = kept(tables["users"]), kept(tables["items"])
    events = movielens.ratings_frame(raw["events"], "\t", users, items, min_id=0)
    test = movielens.ratings_frame(raw["test_rating"], "\t", None, None, min_id=0)
    negatives = _negatives(raw["test_negative"])
    test, negatives = _pair(test, negatives)
    tables.update({"events": events, "test_rating": test, "test_negative": negatives})

    test_split = kept(test).join(
        kept(negatives).select("user_id", "item_id", "negatives"), ["user_id", "item_id"]
    )
    if users is None:
        users = kept(events).select("user_id").union(kept(test).select("user_id")).distinct()
        item_ids = (
            kept(events).select("item_id")
            .union(kept(test).select("item_id"))
            .union(kept(negatives).select(F.explode("negatives").alias("item_id")))
            .distinct()
        )  # fmt: skip
        items = item_ids.select(
            *item_columns(F.col("item_id"), None, empty_strings(), empty_strings(), None)
        )
    return Transformed(
        classified=tables,
        outputs={
            "users": users,
            "items": items,
            "events": kept(events),
            "ncf/test": test_split.select("user_id", "item_id", "negatives"),
        },
    )


def _negatives(lines: DataFrame) -> DataFrame:
    """Classified `(u,i)\\tneg1\\tneg2...` lines."""
    df = lines.select(
        *lines.columns,
        F.regexp_extract("raw", _NEGATIVE_LINE, 1).alias("u"),
        F.regexp_extract("raw", _NEGATIVE_LINE, 2).alias("i"),
        F.split(F.regexp_extract("raw", _NEGATIVE_LINE, 3), "\t").alias("_negs"),
    )
    matched = F.col("raw").rlike(_NEGATIVE_LINE)
    bad_negative = F.exists("_negs", lambda n: ~n.rlike(r"^\d+$"))
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_line", ~matched),
            ("bad_negative", bad_negative),
        ],
    )
    df = df.select(
        as_int("u").cast("string").alias("user_id"),
        as_int("i").cast("string").alias("item_id"),
        F.transform("_negs", lambda n: n.try_cast("long").cast("string")).alias("negatives"),
        *OUTCOME,
    )
    return mark_duplicates(df, ["user_id", "item_id"], [F.col("raw")])


def _pair(test: DataFrame, negatives: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Fail test ratings without a negatives line (`missing_negatives`) and negatives lines
    without a test rating (`unmatched_test_pair`)."""

    def flagged(df: DataFrame, other: DataFrame, reason: str) -> DataFrame:
        keys = kept(other).select("user_id", "item_id").distinct().withColumn("_hit", F.lit(True))
        joined = df.join(keys, ["user_id", "item_id"], "left")
        failed = F.col("reason").isNull() & F.col("_hit").isNull()
        return joined.withColumn(
            "reason", F.when(failed, F.lit(reason)).otherwise(F.col("reason"))
        ).drop("_hit")

    return (
        flagged(test, negatives, "missing_negatives"),
        flagged(negatives, test, "unmatched_test_pair"),
    )
