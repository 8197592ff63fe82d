"""Vocabularies: raw id or category value -> dense int index, with 0 reserved for unknown.

All vocabularies of a run are built together by Spark from one `(name, token)`
frame, so the whole set costs two Spark jobs; each stays a DataFrame
`(token, idx)` and only sizes and id types come back to the driver.  Token order
is deterministic: numeric when every token of a vocabulary is an integer (so
dense 0-based int ids map to `raw + 1`, as the NCF files expect), lexicographic
otherwise.  Indices come from a row number per vocabulary, so one vocabulary is
sorted by one task: fine for millions of tokens.  The JSON files
(docs/data-contracts.md §3) are written by Spark one token a line, so the driver
never holds a token list.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from peppercorn import storage
from peppercorn.config import join_uri

__all__ = ["UNKNOWN", "Vocab", "build_vocabs", "encode", "encode_array", "write_vocabs"]

UNKNOWN = "<unk>"
_INT_TOKEN = r"^-?[0-9]{1,18}$"
_FOOTER_KEY = 2**62


@dataclass(frozen=True)
class Vocab:
    """A built vocabulary: `table` has (token, idx) with idx in 1..size-1."""

    name: str
    table: DataFrame
    size: int  # including the reserved unknown index 0
    id_type: str  # "int" or "string"
    min_frequency: int


def build_vocabs(
    tokens: DataFrame, names: list[str], min_frequency: int
) -> tuple[dict[str, Vocab], DataFrame]:
    """One vocabulary per name from `tokens` (name, token), one row per occurrence.

    Also returns the cached (name, token, idx, all_int) frame behind them (to digest and
    unpersist).

    Tokens seen fewer than `min_frequency` times are left out and so map to 0.
    A name with no tokens gets a vocabulary of size 1 (unknown only).
    """
    counts = (
        tokens.where(F.col("token").isNotNull())
        .groupBy("name", "token")
        .agg(F.count(F.lit(1)).alias("n"))
        .where(F.col("n") >= min_frequency)
        .withColumn("is_int", F.col("token").rlike(_INT_TOKEN))
    )
    all_int = F.min(F.col("is_int").cast("int")).over(Window.partitionBy("name")) == 1
    order = Window.partitionBy("name").orderBy(
        F.when(F.col("all_int"), F.col("token").try_cast("long")), F.col("token")
    )
    table = (
        counts.withColumn("all_int", all_int)
        .withColumn("idx", F.row_number().over(order).cast("int"))
        .select("name", "token", "idx", "all_int")
        .cache()
    )
    stats = {
        row["name"]: row
        for row in table.groupBy("name")
        .agg(F.count(F.lit(1)).alias("size"), F.first("all_int").alias("all_int"))
        .collect()
    }
    vocabs = {}
    for name in names:
        row = stats.get(name)
        size = int(row["size"]) + 1 if row else 1
        id_type = "int" if row and row["all_int"] else "string"
        part = table.where(F.col("name") == name).select("token", "idx")
        vocabs[name] = Vocab(name, part, size, id_type, min_frequency)
    return vocabs, table


# Vocabularies up to this many tokens are broadcast to the joins that encode with them. A
# million users' tokens are ~50 MB as a broadcast hash table, while a shuffle join sends every
# event across the network (or the local disk) once more, by a key that the next group-by
# reshuffles anyway; at 1M users the user vocabulary sat just above the old 1M cut.
_BROADCAST_MAX_TOKENS = 5_000_000


def _mapping(vocab: Vocab, token: str, idx: str) -> DataFrame:
    mapping = vocab.table.select(F.col("token").alias(token), F.col("idx").alias(idx))
    return F.broadcast(mapping) if vocab.size <= _BROADCAST_MAX_TOKENS else mapping


def encode(df: DataFrame, vocab: Vocab, column: str, out: str) -> DataFrame:
    """Replace string column `column` by int32 `out` (0 where the token is not in `vocab`)."""
    mapping = _mapping(vocab, "__tok", out)
    joined = df.join(mapping, df[column] == mapping["__tok"], "left")
    return joined.drop("__tok", column).withColumn(
        out, F.coalesce(F.col(out), F.lit(0)).cast("int")
    )


def encode_array(df: DataFrame, vocab: Vocab, key: str, column: str, out: str) -> DataFrame:
    """(key, out: array<int>) with the sorted distinct indices of array column `column`.

    Unknown tokens become 0; rows whose array is empty or null get an empty array.
    """
    exploded = df.select(key, F.explode_outer(column).alias("__tok"))
    joined = exploded.join(_mapping(vocab, "__tok", "__idx"), "__tok", "left").select(
        key,
        F.when(F.col("__tok").isNull(), F.lit(None))
        .otherwise(F.coalesce(F.col("__idx"), F.lit(0)))
        .cast("int")
        .alias("__idx"),
    )
    return joined.groupBy(key).agg(F.array_sort(F.collect_set("__idx")).alias(out))


def write_vocabs(spark: SparkSession, vocabs: list[Vocab], tokens: DataFrame, folder: str) -> None:
    """Write `<folder>/<name>.json` for each vocabulary, in one Spark job.

    `tokens` is the (name, token, idx) frame the vocabularies were built from.
    """
    ends = []
    for vocab in vocabs:
        header = (
            f'{{"name": "{vocab.name}", "min_frequency": {vocab.min_frequency}, '
            f'"id_type": "{vocab.id_type}", "tokens": ["{UNKNOWN}"'
        )
        ends += [(vocab.name, -1, header), (vocab.name, _FOOTER_KEY, "]}")]
    ends_df = spark.createDataFrame(ends, "name string, key long, line string")
    # to_json of a one-element array escapes the token; stripping the brackets leaves "tok".
    quoted = F.to_json(F.array(F.col("token")))
    body = (
        tokens.where(F.col("name").isin([v.name for v in vocabs]))
        .withColumn("__q", quoted)
        .select(
            "name",
            F.col("idx").cast("long").alias("key"),
            F.concat(F.lit(","), F.expr("substring(__q, 2, length(__q) - 2)")).alias("line"),
        )
    )
    scratch = join_uri(folder, "_parts")
    (
        ends_df.unionByName(body)
        .repartition(len(vocabs), "name")
        .sortWithinPartitions("name", "key")
        .select("name", "line")
        .write.partitionBy("name")
        .text(scratch)
    )
    for vocab in vocabs:
        part_dir = join_uri(scratch, f"name={vocab.name}")
        parts = [p for p in storage.list_dir(spark, part_dir) if p.startswith("part-")]
        if len(parts) != 1:
            raise RuntimeError(f"expected one part file for vocabulary {vocab.name}, got {parts}")
        storage.rename(spark, join_uri(part_dir, parts[0]), join_uri(folder, f"{vocab.name}.json"))
    storage.delete(spark, scratch)
