"""Dense feature normalisation: optional log1p, then z-score with stats fitted in Spark.

The fitted statistics go into the manifest so serving can apply the same
mapping to new data: `z = (f(x) - mean) / std`, and a missing value becomes 0
(the mean).  A constant column gets std 1 rather than a division by zero.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

__all__ = ["apply_normalizer", "fit_normalizer", "transform_for"]

_LOG1P_PREFIXES = ("interactions_", "impressions_", "days_since_", "age_days", "watch_seconds_")


def transform_for(column: str) -> str:
    """'log1p' for counts, durations and ages (long-tailed), 'identity' otherwise."""
    return "log1p" if column.startswith(_LOG1P_PREFIXES) else "identity"


def _transformed(column: str, kind: str) -> Column:
    value = F.col(column).cast("double")
    # Ages can be slightly negative (created after the newest event); clamp before log1p.
    return F.log1p(F.greatest(value, F.lit(0.0))) if kind == "log1p" else value


def fit_normalizer(df: DataFrame, columns: list[str]) -> dict[str, dict]:
    """{column: {"transform", "mean", "std"}} over the non-null values of `df`."""
    if not columns:
        return {}
    kinds = {c: transform_for(c) for c in columns}
    aggs = []
    for c in columns:
        aggs += [F.avg(_transformed(c, kinds[c])), F.stddev_pop(_transformed(c, kinds[c]))]
    row = df.agg(*aggs).first()
    stats = {}
    for i, c in enumerate(columns):
        mean, std = row[2 * i], row[2 * i + 1]
        stats[c] = {
            "transform": kinds[c],
            "mean": float(mean) if mean is not None else 0.0,
            "std": float(std) if std is not None and std > 1e-12 else 1.0,
        }
    return stats


def apply_normalizer(df: DataFrame, stats: Mapping[str, Mapping]) -> DataFrame:
    """Replace each fitted column by its float32 z-score (missing -> 0)."""
    out = df
    for c, s in stats.items():
        z = (_transformed(c, s["transform"]) - F.lit(s["mean"])) / F.lit(s["std"])
        out = out.withColumn(c, F.coalesce(z, F.lit(0.0)).cast("float"))
    return out
