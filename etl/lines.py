"""Reading raw text tables line by line, and parsing lines into string fields.

Every source is read as text first, so that each raw line survives to the quarantine
verbatim when it cannot be parsed, and so that `read` counts lines, not parser guesses.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from peppercorn import storage

__all__ = [
    "CORRUPT",
    "EtlInputError",
    "parse_csv",
    "parse_json",
    "read_lines",
    "require",
    "split_fields",
]

CORRUPT = "_corrupt_record"


class EtlInputError(ValueError):
    """An input that cannot be read at all (missing directory or file); names the path."""


def require(spark, uri: str, what: str) -> str:
    """`uri` itself, or EtlInputError naming what is missing."""
    if not storage.exists(spark, uri):
        raise EtlInputError(f"{what} not found: {uri}")
    return uri


def read_lines(spark, uri: str, header: str | None = None, encoding: str = "UTF-8") -> DataFrame:
    """One row per line of the file(s) at `uri`, as column `raw`.

    Lines equal to `header` (one per file written by Spark, or the file's first line)
    are dropped: they are not records.  Spark's text source keeps the undecoded bytes,
    so a non-UTF-8 file is decoded from those bytes without loss.
    """
    lines = spark.read.text(uri).select(F.col("value").alias("raw"))
    if encoding.upper().replace("-", "") != "UTF8":
        lines = lines.select(F.decode(F.col("raw").cast("binary"), encoding).alias("raw"))
    if header is not None:
        lines = lines.where(F.col("raw") != F.lit(header))
    return lines


def split_fields(lines: DataFrame, sep: str, names: list[str]) -> DataFrame:
    """Lines split on the literal `sep` (no quoting): `raw`, `_n` (field count), `names`."""
    parts = lines.select("raw", F.split("raw", _regex_literal(sep), -1).alias("_parts"))
    fields = [F.get("_parts", i).alias(name) for i, name in enumerate(names)]
    return parts.select("raw", F.size("_parts").alias("_n"), *fields)


def parse_csv(lines: DataFrame, names: list[str]) -> DataFrame:
    """Lines as RFC-4180 CSV (quotes doubled inside quoted fields) into string columns.

    A line with a different number of fields, or unbalanced quotes, keeps its fields null
    where unknown and gets its text in `_corrupt_record`.
    """
    schema = ", ".join(f"`{n}` string" for n in [*names, CORRUPT])
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT, "escape": '"'}
    parsed = F.from_csv(F.col("raw"), schema, options).alias("_p")
    return lines.select("*", parsed).select(*lines.columns, "_p.*")


def parse_json(lines: DataFrame, schema: str) -> DataFrame:
    """Lines as JSON objects into the columns of `schema` (a DDL string).

    Declare scalars as strings: Spark then keeps a number's text, so type checks happen
    in validation with named reasons instead of failing the whole line.
    """
    full = f"{schema}, {CORRUPT} string"
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    parsed = F.from_json(F.col("raw"), full, options).alias("_p")
    return lines.select("*", parsed).select(*lines.columns, "_p.*")


def _regex_literal(sep: str) -> str:
    return "".join(f"\\{c}" if not c.isalnum() else c for c in sep)
