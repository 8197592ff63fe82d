"""Shared validation rules: first failing reason per row, unknown ids, duplicates.

A *classified* frame has one row per raw line: the clean columns, `raw` (the line's text),
`raw_bytes` (its exact bytes) and `reason` (null when the row is kept, else a stable
snake_case code).  Rules only ever set a reason on rows that have none yet, so every line
has exactly one outcome; reading already sets `invalid_utf8` (etl.lines.read_lines).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl.lines import line_bytes

__all__ = [
    "as_double",
    "as_int",
    "blank",
    "first_failure",
    "mark_duplicates",
    "mark_unknown",
    "missing",
    "quarantine_rows",
]


def blank(raw: str = "raw") -> Column:
    """The line is empty or holds nothing but whitespace (spaces, tabs, CR, VT, FF)."""
    # Not trim(): it strips spaces only, so a tab-only line would reach the parsers and
    # be quarantined as a missing field or a malformed line.
    return F.col(raw).rlike(r"^\s*$")


def missing(col: str) -> Column:
    """The field is absent, null or only whitespace."""
    return F.col(col).isNull() | (F.trim(F.col(col)) == "")


def as_int(col: str) -> Column:
    """The field as a long, null where it is not an integer."""
    return F.trim(F.col(col)).try_cast("long")


def as_double(col: str) -> Column:
    """The field as a double, null where it is not a finite number."""
    value = F.trim(F.col(col)).try_cast("double")
    return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)


def first_failure(df: DataFrame, rules: Sequence[tuple[str, Column]]) -> DataFrame:
    """Add `reason`: the code of the first rule whose condition holds (null: none holds)."""
    picks = [F.when(F.coalesce(cond, F.lit(False)), F.lit(code)) for code, cond in rules]
    current = [F.col("reason")] if "reason" in df.columns else []
    return df.withColumn("reason", F.coalesce(*current, *picks, F.lit(None).cast("string")))


def mark_unknown(df: DataFrame, col: str, known: DataFrame, reason: str) -> DataFrame:
    """Set `reason` on rows not yet failed whose `col` is not among `known`'s single column."""
    ids = known.select(F.col(known.columns[0]).alias("_known_id")).distinct()
    ids = ids.withColumn("_known", F.lit(True))
    joined = df.join(ids, df[col] == ids["_known_id"], "left")
    failed = F.col("reason").isNull() & F.col("_known").isNull()
    return joined.withColumn(
        "reason", F.when(failed, F.lit(reason)).otherwise(F.col("reason"))
    ).drop("_known_id", "_known")


def mark_duplicates(df: DataFrame, keys: Sequence[str], order: Sequence[Column]) -> DataFrame:
    """Among rows not yet failed, all but the first by `order` per `keys` get `duplicate`.

    `order` should end in a column that breaks every tie (the raw line) so that the kept
    row never depends on how Spark partitioned the input.
    """
    ok = F.col("reason").isNull()
    window = Window.partitionBy(*keys, ok).orderBy(*order)
    rank = F.row_number().over(window)
    return df.withColumn(
        "reason", F.when(ok & (rank > 1), F.lit("duplicate")).otherwise(F.col("reason"))
    )


def quarantine_rows(classified: DataFrame, source: str) -> DataFrame:
    """The failed rows of a classified frame in the quarantine layout (docs/data-contracts.md
    §2): `source`, `raw` (valid UTF-8 text), `raw_bytes` (the exact bytes), `reason`."""
    return classified.where(F.col("reason").isNotNull()).select(
        F.lit(source).alias("source"), "raw", line_bytes().alias("raw_bytes"), "reason"
    )
