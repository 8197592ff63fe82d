"""Extract: the clean tables of docs/data-contracts.md §2, checked for the columns we use."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from peppercorn import storage
from peppercorn.config import join_uri

__all__ = ["CleanData", "FeaturesError", "read_clean"]

_VALUE_COLUMNS = ("rating", "watch_seconds", "gift_value")


class FeaturesError(ValueError):
    """Input the features stage cannot use; the message names the path and the problem."""


@dataclass(frozen=True)
class CleanData:
    events: DataFrame  # user_id, item_id, event, ts, rating, watch_seconds, gift_value
    users: DataFrame  # user_id + categorical string columns
    items: DataFrame  # item_id, categories, tags, created
    ncf_test: DataFrame | None  # user_id, item_id, negatives (kind ncf only)


def _read(spark: SparkSession, uri: str, required: dict[str, type]) -> DataFrame:
    if not storage.exists(spark, uri):
        raise FeaturesError(f"{uri}: missing clean table (run the ETL stage first)")
    try:
        df = spark.read.parquet(uri)
    except Exception as exc:  # Spark's AnalysisException text names the cause
        raise FeaturesError(f"{uri}: cannot read as Parquet: {str(exc).splitlines()[0]}") from None
    for column, kind in required.items():
        if column not in df.columns:
            raise FeaturesError(f"{uri}: required column {column!r} is missing")
        actual = df.schema[column].dataType
        if not isinstance(actual, kind):
            raise FeaturesError(
                f"{uri}: column {column!r} has type {actual.simpleString()}, "
                f"expected {kind.__name__.replace('Type', '').lower()}"
            )
    return df


def read_clean(spark: SparkSession, clean_root: str, kind: str) -> CleanData:
    """Read `<clean_root>/{events,users,items}` (and `ncf/test` for kind `ncf`)."""
    events = _read(
        spark,
        join_uri(clean_root, "events"),
        {
            "user_id": T.StringType,
            "item_id": T.StringType,
            "event": T.StringType,
            "ts": T.TimestampType,
        },
    )
    for column in _VALUE_COLUMNS:
        if column not in events.columns:
            events = events.withColumn(column, F.lit(None).cast("double"))
    events = events.select("user_id", "item_id", "event", "ts", *_VALUE_COLUMNS)
    users = _read(spark, join_uri(clean_root, "users"), {"user_id": T.StringType})
    categorical = [
        f.name
        for f in users.schema.fields
        if f.name != "user_id" and isinstance(f.dataType, T.StringType)
    ]
    users = users.select("user_id", *categorical)
    items = _read(
        spark,
        join_uri(clean_root, "items"),
        {"item_id": T.StringType, "categories": T.ArrayType, "tags": T.ArrayType},
    )
    created = F.col("created").cast("date") if "created" in items.columns else F.lit(None)
    items = items.select("item_id", "categories", "tags", created.cast("date").alias("created"))
    ncf_test = None
    if kind == "ncf":
        ncf_test = _read(
            spark,
            join_uri(clean_root, "ncf", "test"),
            {"user_id": T.StringType, "item_id": T.StringType, "negatives": T.ArrayType},
        ).select("user_id", "item_id", "negatives")
    return CleanData(events, users, items, ncf_test)
