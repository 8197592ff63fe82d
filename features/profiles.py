"""User and item profiles: pure transforms over index-encoded interactions.

Times are measured back from a reference time `ref_us` (microseconds since the
epoch; the job passes the newest event's time, so outputs do not depend on the
wall clock).  An interaction is inside a window of w days when it happened less
than w days before the reference time.  Values here are raw; `normalize` turns
them into model inputs.  Every user/item index of the vocabulary gets a row,
with zero counts and null statistics where it has no interactions.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["activity", "category_vector", "item_profile", "user_profile"]

_DAY_US = 86_400 * 1_000_000


def _days_before(ref_us: int, ts: Column) -> Column:
    return (F.lit(ref_us) - F.unix_micros(ts)) / F.lit(float(_DAY_US))


def activity(
    interactions: DataFrame,
    key: str,
    ref_us: int,
    windows: Sequence[int],
    value_columns: Sequence[str],
) -> DataFrame:
    """Per `key`: interaction counts per window and all time, recency, value mean/spread."""
    age = _days_before(ref_us, F.col("ts"))
    aggs = [F.sum(F.when(age < w, 1).otherwise(0)).alias(f"interactions_{w}d") for w in windows]
    aggs += [
        F.count(F.lit(1)).alias("interactions_all"),
        F.min(age).alias("days_since_last"),
    ]
    for column in value_columns:
        aggs += [F.avg(column).alias(f"{column}_mean"), F.stddev_pop(column).alias(f"{column}_std")]
    return interactions.groupBy(key).agg(*aggs)


def _with_unknown(categories: Column) -> Column:
    # Items with no known category count under the unknown index 0.
    return F.when(F.size(F.coalesce(categories, F.array())) > 0, categories).otherwise(
        F.array(F.lit(0))
    )


def category_vector(shares: Column, n_categories: int) -> Column:
    """array<float> of length `n_categories` from a map<int, double> (missing -> 0)."""
    return F.transform(
        F.sequence(F.lit(0), F.lit(n_categories - 1)),
        lambda i: F.coalesce(F.try_element_at(shares, i), F.lit(0.0)).cast("float"),
    )


def _category_affinity(
    interactions: DataFrame, item_categories: DataFrame, n_categories: int
) -> DataFrame:
    # Each interaction is shared equally among its item's categories, so a
    # user's affinity vector sums to 1.
    cats = interactions.join(item_categories, "item_idx", "left").select(
        "user_idx", _with_unknown(F.col("category_idxs")).alias("cats")
    )
    weighted = cats.select(
        "user_idx",
        F.explode("cats").alias("cat"),
        (F.lit(1.0) / F.size("cats")).alias("w"),
    )
    per_cat = weighted.groupBy("user_idx", "cat").agg(F.sum("w").alias("w"))
    shares = per_cat.groupBy("user_idx").agg(
        F.map_from_entries(F.collect_list(F.struct("cat", "w"))).alias("m"),
        F.sum("w").alias("total"),
    )
    share_map = F.transform_values("m", lambda _, v: v / F.col("total"))
    return shares.select(
        "user_idx", category_vector(share_map, n_categories).alias("category_affinity")
    )


def _fill_counts(df: DataFrame, windows: Sequence[int]) -> DataFrame:
    counts = [f"interactions_{w}d" for w in windows] + ["interactions_all"]
    return df.fillna(0, subset=counts)


def user_profile(
    user_ids: DataFrame,
    interactions: DataFrame,
    users: DataFrame,
    item_categories: DataFrame,
    ref_us: int,
    windows: Sequence[int],
    value_columns: Sequence[str],
    n_categories: int,
) -> DataFrame:
    """One row per `user_ids.user_idx`.

    interactions: (user_idx, item_idx, ts, <value_columns>); users: (user_idx,
    <name>_idx...) categorical columns already encoded; item_categories:
    (item_idx, category_idxs: array<int>).  `n_categories` = 0 leaves out the
    category affinity (a source without categories).
    """
    profile = user_ids.join(
        activity(interactions, "user_idx", ref_us, windows, value_columns), "user_idx", "left"
    )
    profile = _fill_counts(profile, windows)
    categorical = [c for c in users.columns if c != "user_idx"]
    profile = profile.join(users, "user_idx", "left").fillna(0, subset=categorical)
    if n_categories > 0:
        affinity = _category_affinity(interactions, item_categories, n_categories)
        zeros = F.array_repeat(F.lit(0.0).cast("float"), n_categories)
        profile = profile.join(affinity, "user_idx", "left").withColumn(
            "category_affinity", F.coalesce("category_affinity", zeros)
        )
    return profile


def item_profile(
    item_ids: DataFrame,
    interactions: DataFrame,
    exposures: DataFrame | None,
    items: DataFrame,
    ref_us: int,
    windows: Sequence[int],
    value_columns: Sequence[str],
    n_categories: int,
) -> DataFrame:
    """One row per `item_ids.item_idx`.

    items: (item_idx, created: date?, category_idxs: array<int>, tag_idx:
    array<int>?) encoded.  exposures: (item_idx, event) impressions and clicks,
    or None when the source logs no impressions; then there is no CTR.
    """
    profile = item_ids.join(
        activity(interactions, "item_idx", ref_us, windows, value_columns), "item_idx", "left"
    )
    profile = _fill_counts(profile, windows)
    created = F.col("created").cast("timestamp")
    meta = items.select(
        "item_idx",
        _days_before(ref_us, created).alias("age_days"),
        *(["tag_idx"] if "tag_idx" in items.columns else []),
        _with_unknown(F.col("category_idxs")).alias("__cats"),
    )
    profile = profile.join(meta, "item_idx", "left")
    if n_categories > 0:
        ones = F.map_from_arrays(
            F.coalesce("__cats", F.array(F.lit(0))),
            F.array_repeat(F.lit(1.0), F.size(F.coalesce("__cats", F.array(F.lit(0))))),
        )
        profile = profile.withColumn("category_multi_hot", category_vector(ones, n_categories))
    profile = profile.drop("__cats")
    if "tag_idx" in profile.columns:
        profile = profile.withColumn("tag_idx", F.coalesce("tag_idx", F.array().cast("array<int>")))
    if exposures is not None:
        ctr = exposures.groupBy("item_idx").agg(
            F.sum(F.when(F.col("event") == "impression", 1).otherwise(0)).alias("impressions_all"),
            F.sum(F.when(F.col("event") == "click", 1).otherwise(0)).alias("__clicks"),
        )
        profile = (
            profile.join(ctr, "item_idx", "left")
            .fillna(0, subset=["impressions_all", "__clicks"])
            .withColumn(
                "ctr",
                F.when(F.col("impressions_all") > 0, F.col("__clicks") / F.col("impressions_all")),
            )
            .drop("__clicks")
        )
    return profile
