"""MovieLens "latest"/25M CSV folders (`ratings.csv`, `movies.csv`, optional `tags.csv`).

Ids are arbitrary integers kept as strings.  There are no demographics: `users` is the
distinct raters of the kept ratings.  `created` is January 1st of the year in the title
("Heat (1995)"), the only release information the format has.  Tags become each movie's
`tags`: distinct, trimmed, lower-cased, sorted.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.lines import CORRUPT, parse_csv, read_lines, require
from etl.tables import OUTCOME, Transformed, classified, event_columns, item_columns, kept
from etl.validate import (
    as_double,
    as_int,
    blank,
    first_failure,
    mark_duplicates,
    mark_unknown,
    missing,
)
from peppercorn import storage
from peppercorn.config import join_uri

__all__ = ["MOVIES", "RATINGS", "TAGS", "extract", "transform"]

RATINGS = ["userId", "movieId", "rating", "timestamp"]
MOVIES = ["movieId", "title", "genres"]
TAGS = ["userId", "movieId", "tag", "timestamp"]
_NO_GENRES = "(no genres listed)"
_MAX_SECONDS = 32_503_680_000


def extract(spark, uri: str) -> dict[str, DataFrame]:
    """ratings, movies and (when present) tags as lines, headers dropped."""
    require(spark, uri, "MovieLens CSV folder")
    tables = {
        "events": read_lines(
            spark, require(spark, join_uri(uri, "ratings.csv"), "ratings.csv"), ",".join(RATINGS)
        ),
        "items": read_lines(
            spark, require(spark, join_uri(uri, "movies.csv"), "movies.csv"), ",".join(MOVIES)
        ),
    }
    tags = join_uri(uri, "tags.csv")
    if storage.exists(spark, tags):
        tables["tags"] = read_lines(spark, tags, ",".join(TAGS))
    return tables


def transform(raw: dict[str, DataFrame]) -> Transformed:
    """Classify every line; clean items (with tags), rating events and derived users."""
    movies = _movies(raw["items"])
    movie_ids = kept(movies).select("item_id")
    tables = {"items": movies}
    tag_sets = None
    if "tags" in raw:
        tags = _tags(raw["tags"], movie_ids)
        tables["tags"] = tags
        tag_sets = (
            kept(tags).groupBy("item_id").agg(F.array_sort(F.collect_set("tag")).alias("_tags"))
        )
    events = _ratings(raw["events"], movie_ids)
    tables["events"] = events
    items = kept(movies)
    if tag_sets is not None:
        items = (
            items.join(tag_sets, "item_id", "left")
            .withColumn("tags", F.coalesce(F.col("_tags"), F.col("tags")))
            .drop("_tags")
        )
    users = kept(events).select("user_id").distinct()
    return Transformed(
        classified=tables, outputs={"users": users, "items": items, "events": kept(events)}
    )


def _timestamp_rule(seconds):
    return ("bad_timestamp", seconds.isNull() | (seconds <= 0) | (seconds > _MAX_SECONDS))


def _movies(lines: DataFrame) -> DataFrame:
    df = parse_csv(lines, MOVIES)
    mid = as_int("movieId")
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_csv", F.col(CORRUPT).isNotNull()),
            ("bad_item_id", mid.isNull() | (mid < 0)),
            ("missing_title", missing("title")),
        ],
    )
    df = df.withColumn("item_id", mid.cast("string"))
    df = mark_duplicates(df, ["item_id"], [F.col("raw")])
    title = F.trim("title")
    year = F.regexp_extract(title, r"\((\d{4})\)\s*$", 1)
    year_n = F.when(year != "", year.cast("int"))
    created = F.when(year_n >= 1000, F.make_date(year_n, F.lit(1), F.lit(1)))
    genres = F.coalesce(F.trim("genres"), F.lit(""))
    categories = F.when((genres == "") | (genres == _NO_GENRES), F.array()).otherwise(
        F.split(genres, r"\|")
    )
    return classified(df, item_columns(F.col("item_id"), title, categories, F.array(), created))


def _tags(lines: DataFrame, movie_ids: DataFrame) -> DataFrame:
    df = parse_csv(lines, TAGS)
    uid, mid, seconds = as_int("userId"), as_int("movieId"), as_int("timestamp")
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_csv", F.col(CORRUPT).isNotNull()),
            ("bad_user_id", uid.isNull() | (uid < 0)),
            ("bad_item_id", mid.isNull() | (mid < 0)),
            ("missing_tag", missing("tag")),
            _timestamp_rule(seconds),
        ],
    )
    df = df.select(
        uid.cast("string").alias("user_id"),
        mid.cast("string").alias("item_id"),
        F.lower(F.trim("tag")).alias("tag"),
        seconds.alias("seconds"),
        *OUTCOME,
    )
    df = mark_unknown(df, "item_id", movie_ids, "unknown_item")
    df = mark_duplicates(df, ["user_id", "item_id", "tag", "seconds"], [F.col("raw")])
    return classified(df, [F.col("item_id"), F.col("tag")])


def _ratings(lines: DataFrame, movie_ids: DataFrame) -> DataFrame:
    df = parse_csv(lines, RATINGS)
    uid, mid = as_int("userId"), as_int("movieId")
    rating, seconds = as_double("rating"), as_int("timestamp")
    half = rating * 2
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_csv", F.col(CORRUPT).isNotNull()),
            ("bad_user_id", uid.isNull() | (uid < 0)),
            ("bad_item_id", mid.isNull() | (mid < 0)),
            ("bad_rating", rating.isNull()),
            # Half stars from 0.5 to 5.0.
            ("rating_out_of_range", (rating < 0.5) | (rating > 5) | (F.round(half) != half)),
            _timestamp_rule(seconds),
        ],
    )
    ok = F.col("reason").isNull()
    df = df.select(
        uid.cast("string").alias("user_id"),
        mid.cast("string").alias("item_id"),
        rating.alias("rating"),
        F.when(ok, F.timestamp_seconds(seconds)).alias("ts"),
        *OUTCOME,
    )
    df = mark_unknown(df, "item_id", movie_ids, "unknown_item")
    df = mark_duplicates(df, ["user_id", "item_id", "ts"], [F.col("raw")])
    columns = event_columns(
        F.col("user_id"), F.col("item_id"), F.lit("rating"), F.col("ts"), rating=F.col("rating")
    )
    return classified(df, columns)
