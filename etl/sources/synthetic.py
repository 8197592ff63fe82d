"""The synthetic generator's raw logs (docs/data-contracts.md §1) into clean tables."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl.lines import CORRUPT, parse_csv, parse_json, read_lines, require
from etl.tables import (
    OUTCOME,
    Transformed,
    classified,
    event_columns,
    final,
    item_columns,
    kept,
)
from etl.validate import (
    as_double,
    blank,
    first_failure,
    mark_duplicates,
    mark_unknown,
    missing,
)
from peppercorn.config import join_uri
from peppercorn.event_rules import EVENTS

__all__ = ["EVENTS", "EVENT_FIELDS", "USER_FIELDS", "event_rules", "extract", "transform"]

USER_FIELDS = ["user_id", "age_band", "gender", "city_tier", "device", "signup_date"]
EVENT_FIELDS = ["event_id", "user_id", "item_id", "event", "ts", "watch_seconds", "gift_value"]
_ITEM_SCHEMA = (
    "item_id string, streamer_id string, category string, tags array<string>, created_at string"
)
_EVENT_SCHEMA = ", ".join(f"{name} string" for name in EVENT_FIELDS)
_TS_FORMAT = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS]XXX"
_HUGE_YEAR = "^[+-]?[0-9]{6}"


def extract(spark, raw_uri: str, events_format: str = "jsonl") -> dict[str, DataFrame]:
    """The raw users (CSV), items (JSON lines) and events (JSON lines or CSV) as lines."""
    header = ",".join(EVENT_FIELDS) if events_format == "csv" else None
    return {
        "users": read_lines(
            spark, require(spark, join_uri(raw_uri, "users"), "raw users"), ",".join(USER_FIELDS)
        ),
        "items": read_lines(spark, require(spark, join_uri(raw_uri, "items"), "raw items")),
        "events": read_lines(
            spark, require(spark, join_uri(raw_uri, "events"), "raw events"), header
        ),
    }


def transform(raw: dict[str, DataFrame], events_format: str = "jsonl") -> Transformed:
    """Classify every raw line; clean users, items and events for the kept ones."""
    users = final(_users(raw["users"]))
    items = final(_items(raw["items"]))
    events = final(_events(raw["events"], events_format, kept(users), kept(items)))
    return Transformed(
        classified={"users": users, "items": items, "events": events},
        outputs={"users": kept(users), "items": kept(items), "events": kept(events)},
    )


def _users(lines: DataFrame) -> DataFrame:
    df = parse_csv(lines, USER_FIELDS)
    signup = _date(F.trim("signup_date"))
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_csv", F.col(CORRUPT).isNotNull()),
            ("missing_user_id", missing("user_id")),
            ("bad_signup_date", ~missing("signup_date") & signup.isNull()),
        ],
    )
    df = df.withColumn("user_id", F.trim("user_id"))
    df = mark_duplicates(df, ["user_id"], [F.col("raw")])
    cats = [F.trim(c).alias(c) for c in ("age_band", "gender", "city_tier", "device")]
    return classified(df, [F.col("user_id"), *cats])


def _items(lines: DataFrame) -> DataFrame:
    df = parse_json(lines, _ITEM_SCHEMA)
    created = _date(F.trim("created_at"))
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            ("malformed_json", F.col(CORRUPT).isNotNull()),
            ("missing_item_id", missing("item_id")),
            ("bad_created_at", ~missing("created_at") & created.isNull()),
        ],
    )
    df = df.withColumn("item_id", F.trim("item_id")).withColumn("created", created)
    df = mark_duplicates(df, ["item_id"], [F.col("raw")])
    category = F.trim("category")
    categories = F.when(missing("category"), F.array()).otherwise(F.array(category))
    tags = F.coalesce(F.col("tags"), F.array())
    return classified(df, item_columns(F.col("item_id"), None, categories, tags, F.col("created")))


def event_rules(lines: DataFrame, fmt: str = "jsonl") -> DataFrame:
    """The per-line rules of raw events: `lines` (etl.lines.read_lines) classified, with the
    clean columns (trimmed ids, lower-cased event, `ts` a timestamp, the values as doubles),
    any other columns of `lines`, and OUTCOME. Mirrored in Python by
    `peppercorn.event_rules.validate_event`."""
    carried = [c for c in lines.columns if c not in OUTCOME]
    if fmt == "csv":
        df, malformed = parse_csv(lines, EVENT_FIELDS), "malformed_csv"
    else:
        df, malformed = parse_json(lines, _EVENT_SCHEMA), "malformed_json"
    ts = _timestamp(F.trim("ts"), _TS_FORMAT)
    watch, gift = as_double("watch_seconds"), as_double("gift_value")
    event = F.lower(F.trim("event"))
    df = first_failure(
        df,
        [
            ("empty_line", blank()),
            (malformed, F.col(CORRUPT).isNotNull()),
            ("missing_event_id", missing("event_id")),
            ("missing_user_id", missing("user_id")),
            ("missing_item_id", missing("item_id")),
            ("missing_event", missing("event")),
            ("missing_ts", missing("ts")),
            ("unknown_event", ~event.isin(*EVENTS)),
            ("bad_timestamp", ts.isNull()),
            ("bad_watch_seconds", ~missing("watch_seconds") & watch.isNull()),
            ("negative_watch_seconds", watch < 0),
            ("missing_watch_seconds", (event == "watch") & watch.isNull()),
            ("bad_gift_value", ~missing("gift_value") & gift.isNull()),
            ("negative_gift_value", gift < 0),
            ("missing_gift_value", (event == "gift") & gift.isNull()),
        ],
    )
    return df.select(
        F.trim("event_id").alias("event_id"),
        F.trim("user_id").alias("user_id"),
        F.trim("item_id").alias("item_id"),
        event.alias("event"),
        ts.alias("ts"),
        watch.alias("watch_seconds"),
        gift.alias("gift_value"),
        *carried,
        *OUTCOME,
    )


def _timestamp(text: Column, pattern: str) -> Column:
    """try_to_timestamp, null (not an error) for a year of six digits or more.

    Spark 4.1 parses such a year (java.time goes to 999,999,999), then fails the whole job
    with a long overflow where the instant is beyond its microseconds (past about +294247).
    """
    return F.when(~text.rlike(_HUGE_YEAR), F.try_to_timestamp(text, F.lit(pattern)))


def _date(text: Column) -> Column:
    """try_to_date as yyyy-MM-dd, null for a year of six digits or more (as `_timestamp`)."""
    return F.when(~text.rlike(_HUGE_YEAR), F.try_to_date(text, "yyyy-MM-dd"))


def _events(lines: DataFrame, fmt: str, users: DataFrame, items: DataFrame) -> DataFrame:
    df = event_rules(lines, fmt)
    df = mark_unknown(df, "user_id", users, "unknown_user")
    df = mark_unknown(df, "item_id", items, "unknown_item")
    df = mark_duplicates(df, ["event_id"], [F.col("ts"), F.col("raw")])
    columns = event_columns(
        F.col("user_id"),
        F.col("item_id"),
        F.col("event"),
        F.col("ts"),
        watch_seconds=F.col("watch_seconds"),
        gift_value=F.col("gift_value"),
    )
    return classified(df, columns)
