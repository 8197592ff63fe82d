"""Time-based leave-one-out split of collapsed positives.

Per user, positives are ranked by timestamp, newest first, ties broken by the
larger item index (the vocabularies keep raw-id order, so this is the larger
raw id, the NCF reference split's rule).  A user with at least three positives
gives the newest to test and the next to validation; users with fewer keep
everything in train, so no user is evaluated on an item with no training history.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

__all__ = ["MIN_POSITIVES_FOR_HOLDOUT", "leave_one_out", "split_with_given_test"]

MIN_POSITIVES_FOR_HOLDOUT = 3


def _ranked(positives: DataFrame) -> DataFrame:
    by_user = Window.partitionBy("user_idx")
    newest_first = by_user.orderBy(F.col("ts").desc(), F.col("item_idx").desc())
    return positives.withColumn("_rank", F.row_number().over(newest_first)).withColumn(
        "_n", F.count(F.lit(1)).over(by_user)
    )


def leave_one_out(positives: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(train, validation, test) from (user_idx, item_idx, ts) positives.

    train keeps (user_idx, item_idx, ts); validation and test are (user_idx, item_idx).
    """
    ranked = _ranked(positives).cache()
    held = F.col("_n") >= MIN_POSITIVES_FOR_HOLDOUT
    test = ranked.where(held & (F.col("_rank") == 1)).select("user_idx", "item_idx")
    validation = ranked.where(held & (F.col("_rank") == 2)).select("user_idx", "item_idx")
    train = ranked.where(~held | (F.col("_rank") > 2)).select("user_idx", "item_idx", "ts")
    return train, validation, test


def split_with_given_test(
    positives: DataFrame, given_test: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """(train, validation) when the test split is fixed in advance (kind `ncf`).

    Test pairs are removed from the positives; each user's newest remaining
    positive becomes validation when at least one other positive stays in train.
    """
    remaining = positives.join(
        given_test.select("user_idx", "item_idx"), ["user_idx", "item_idx"], "left_anti"
    )
    ranked = _ranked(remaining).cache()
    held = F.col("_n") >= 2
    validation = ranked.where(held & (F.col("_rank") == 1)).select("user_idx", "item_idx")
    train = ranked.where(~held | (F.col("_rank") > 1)).select("user_idx", "item_idx", "ts")
    return train, validation
