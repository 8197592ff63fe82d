"""Each user's time-ordered history: the model input that replaces in-graph history tables.

One row per user with training positives: `item_idx` and `ts` arrays, newest first, capped at
`features.history_length` (the newest kept). Ties in time go to the larger item index being
newer, the split's rule (features/split.py), so the newest history item is the one a
leave-one-out split would have held out next. Built from the training split only, so no
held-out item is ever part of a history a model reads.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

__all__ = ["user_history"]


def user_history(train: DataFrame, length: int) -> DataFrame:
    """(user_idx, item_idx array newest first, ts array) from (user_idx, item_idx, ts) rows."""
    newest_first = Window.partitionBy("user_idx").orderBy(
        F.col("ts").desc(), F.col("item_idx").desc()
    )
    ranked = (
        train.select("user_idx", "item_idx", "ts")
        .withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") <= length)
    )
    # collect_list keeps no order: sort the (rank, item, ts) structs by rank afterwards.
    grouped = ranked.groupBy("user_idx").agg(
        F.sort_array(F.collect_list(F.struct("_rank", "item_idx", "ts"))).alias("_h")
    )
    return grouped.select(
        "user_idx",
        F.col("_h.item_idx").cast("array<int>").alias("item_idx"),
        F.col("_h.ts").alias("ts"),
    )
