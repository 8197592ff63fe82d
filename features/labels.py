"""Interactions and implicit positive labels from clean events.

Impressions are exposures, not interactions: every other event type (click,
watch, gift, follow, rating) is an interaction.  Which interactions are
positives is the label config's choice; positives collapse to one row per
(user, item) carrying the latest timestamp.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from peppercorn.config import LabelConfig

__all__ = ["EXPOSURE_EVENTS", "interactions", "positives"]

EXPOSURE_EVENTS = ("impression",)


def interactions(events: DataFrame) -> DataFrame:
    """Events that are interactions (everything but exposures)."""
    return events.where(~F.col("event").isin(*EXPOSURE_EVENTS))


def positives(events: DataFrame, label: LabelConfig) -> DataFrame:
    """(user_idx, item_idx, ts) implicit positives under `label`, one row per pair."""
    inter = interactions(events)
    if label.kind == "rating":
        inter = inter.where(F.col("rating") >= F.lit(label.rating_threshold))
    elif label.kind == "watch":
        inter = inter.where(
            (F.col("event") == "watch") & (F.col("watch_seconds") >= F.lit(label.watch_seconds))
        )
    return inter.groupBy("user_idx", "item_idx").agg(F.max("ts").alias("ts"))
