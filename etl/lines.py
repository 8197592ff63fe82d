"""Reading raw text tables line by line, and parsing lines into string fields.

Every source is read as text first, so that each raw line survives to the quarantine
verbatim when it cannot be parsed, and so that `read` counts lines, not parser guesses.
A line keeps its exact bytes (`raw_bytes`) beside its decoded text (`raw`): the text is
what rules parse and what a person reads, the bytes are the evidence, nothing lost.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from peppercorn import storage

__all__ = [
    "CORRUPT",
    "INVALID_UTF8",
    "EtlInputError",
    "line_bytes",
    "parse_csv",
    "parse_json",
    "read_failure",
    "read_lines",
    "require",
    "split_fields",
]

CORRUPT = "_corrupt_record"
# The reason of a line whose bytes are not UTF-8: its text, and so every field, is unknown.
INVALID_UTF8 = "invalid_utf8"


class EtlInputError(ValueError):
    """An input that cannot be read (missing, unreadable, failing its checksum); names it."""


def require(spark, uri: str, what: str) -> str:
    """`uri` itself, or EtlInputError naming what is missing."""
    if not storage.exists(spark, uri):
        raise EtlInputError(f"{what} not found: {uri}")
    return uri


def read_lines(spark, uri: str, header: str | None = None, encoding: str = "UTF-8") -> DataFrame:
    """One row per line of the file(s) at `uri`: `raw`, `raw_bytes` and `reason`.

    `raw_bytes` is the line exactly as stored, without its line break, where `raw` does not
    give it back (a line that is not valid UTF-8; every line of a file in another encoding),
    else null: `line_bytes()` is every line's bytes. `raw` is its text
    in `encoding` (UTF-8, or a single-byte one such as ISO-8859-1, which decodes every
    byte).  A UTF-8 line with invalid bytes gets U+FFFD in `raw` for each invalid sequence
    (as Python's `errors="replace"`) and `reason` INVALID_UTF8; `reason` is null otherwise,
    for the source's rules to fill.  Blank lines are kept: they are records that fail.
    Lines equal to `header` (one per file written by Spark, or the file's first line) are
    dropped: they are not records.
    """
    # Spark's text source keeps each line's undecoded bytes in its string column, so the
    # cast to binary gives them back unchanged, whatever the encoding.
    value = F.col("value")
    if encoding.upper().replace("-", "") == "UTF8":
        text = F.make_valid_utf8(value)
        invalid = ~F.is_valid_utf8(value)
        reason = F.when(invalid, F.lit(INVALID_UTF8))
        # A valid line's bytes are its text's (`line_bytes` rebuilds them for the quarantine),
        # so the shuffles of millions of good lines carry each line once, not twice.
        stored = F.when(invalid, value.cast("binary"))
    else:
        text, reason = F.decode(value.cast("binary"), encoding), F.lit(None)
        stored = value.cast("binary")
    lines = spark.read.text(uri).select(
        text.alias("raw"),
        stored.alias("raw_bytes"),
        reason.cast("string").alias("reason"),
    )
    if header is not None:
        lines = lines.where(F.col("raw") != F.lit(header))
    return lines


def line_bytes() -> Column:
    """The exact bytes of a `read_lines` line: `raw_bytes` where stored, else `raw` in UTF-8
    (a valid UTF-8 line's text is its bytes)."""
    return F.coalesce(F.col("raw_bytes"), F.encode(F.col("raw"), "UTF-8"))


# Spark's error condition for a file scan that failed; its `path` parameter names the file.
_FAILED_READ = "FAILED_READ_FILE"
# What Hadoop's checksummed filesystems (the local one included) raise when a file no longer
# matches its `.<name>.crc` sidecar: the file was edited, or copied without its sidecar.
_CHECKSUM = "org.apache.hadoop.fs.ChecksumException"


def read_failure(exc: BaseException) -> EtlInputError | None:
    """EtlInputError naming the file when `exc` is Spark failing to read an input file (a
    checksum mismatch, a vanished file, an I/O error); None for any other error.

    Spark reads lazily, so such errors surface from whichever action runs first, as a Py4J
    error whose Java cause chain holds the file and the cause.
    """
    from py4j.protocol import Py4JError

    try:
        chain = [
            (j.getClass().getName(), j.getMessage() or "", _failed_read_path(j))
            for j in _java_chain(exc)
        ]
    except Py4JError:  # the JVM is gone: nothing more to learn from it
        return None
    path = next((p for _, _, p in chain if p), None)
    checksum = next((message for name, message, _ in chain if name == _CHECKSUM), None)
    if checksum is not None:
        named = re.match(r"Checksum error: (\S+) at ", checksum)
        path = path or (named.group(1) if named else "an input file")
        folder, _, name = path.rpartition("/")
        return EtlInputError(
            f"cannot read {path}: it does not match its checksum file {folder}/.{name}.crc "
            "(stale: the file changed after it was written); delete the .crc or restore the file"
        )
    if path is None:  # not a failed read: an error writing output is not the input's fault
        return None
    name, message, _ = chain[-1]
    if name == "java.io.FileNotFoundException":
        return EtlInputError(f"cannot read {path}: the file no longer exists")
    first = message.strip().splitlines()[0] if message.strip() else ""
    return EtlInputError(f"cannot read {path}: {name.rpartition('.')[2]}: {first}".rstrip(": "))


def _java_chain(exc: BaseException) -> list:
    """The Java throwable behind a Py4J or captured Spark error, then its causes."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    chain = []
    while java is not None and len(chain) < 32:  # bounded: Java allows cause cycles
        chain.append(java)
        java = java.getCause()
    return chain


def _failed_read_path(java) -> str | None:
    """The file a Spark FAILED_READ_FILE error names; None for any other throwable."""
    from py4j.java_gateway import is_instance_of
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None or not is_instance_of(gateway, java, "org.apache.spark.SparkThrowable"):
        return None
    if not str(java.getCondition()).startswith(_FAILED_READ):
        return None
    return java.getMessageParameters().get("path")


def split_fields(lines: DataFrame, sep: str, names: list[str]) -> DataFrame:
    """Lines split on the literal `sep` (no quoting): the lines' columns, `_n` (field count)
    and `names`."""
    parts = lines.select("*", F.split("raw", _regex_literal(sep), -1).alias("_parts"))
    fields = [F.get("_parts", i).alias(name) for i, name in enumerate(names)]
    return parts.select(*lines.columns, F.size("_parts").alias("_n"), *fields)


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
