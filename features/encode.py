"""Index-encoding of the clean tables with the vocabularies (ids, categoricals, arrays)."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.source import CleanData
from features.vocab import Vocab, build_vocabs, encode, encode_array

__all__ = [
    "Vocabularies",
    "build_vocabularies",
    "encode_events",
    "encode_items",
    "encode_ncf_test",
    "encode_users",
]


@dataclass(frozen=True)
class Vocabularies:
    user: Vocab
    item: Vocab
    user_categorical: dict[str, Vocab]  # column name -> vocab
    category: Vocab | None  # None when the source has no item categories
    tag: Vocab | None  # None when the source has no tags
    tokens: DataFrame  # the cached frame behind every vocabulary

    def all(self) -> list[Vocab]:
        extra = [v for v in (self.category, self.tag) if v is not None]
        return [self.user, self.item, *self.user_categorical.values(), *extra]


def build_vocabularies(data: CleanData, min_frequency: int) -> Vocabularies:
    """Ids counted over events and listings; categoricals over users; categories/tags over items."""

    def named(df: DataFrame, name: str, token) -> DataFrame:
        return df.select(F.lit(name).alias("name"), token.cast("string").alias("token"))

    categorical = [c for c in data.users.columns if c != "user_id"]
    # Users/items listed in the clean users/items tables (and items named as NCF test
    # negatives) are known even without events: each listing counts as one occurrence.
    frames = [
        named(data.events, "user_id", F.col("user_id")),
        named(data.users, "user_id", F.col("user_id")),
        named(data.events, "item_id", F.col("item_id")),
        named(data.items, "item_id", F.col("item_id")),
        *(named(data.users, c, F.col(c)) for c in categorical),
        named(data.items.select(F.explode("categories").alias("t")), "category", F.col("t")),
        named(data.items.select(F.explode("tags").alias("t")), "tag", F.col("t")),
    ]
    if data.ncf_test is not None:
        negatives = data.ncf_test.select(F.explode("negatives").alias("t"))
        frames.append(named(negatives, "item_id", F.col("t")))
    tokens = frames[0]
    for frame in frames[1:]:
        tokens = tokens.unionByName(frame)
    names = ["user_id", "item_id", *categorical, "category", "tag"]
    vocabs, table = build_vocabs(tokens, names, min_frequency)
    category, tag = vocabs["category"], vocabs["tag"]
    return Vocabularies(
        vocabs["user_id"],
        vocabs["item_id"],
        {c: vocabs[c] for c in categorical},
        category if category.size > 1 else None,
        tag if tag.size > 1 else None,
        table,
    )


def encode_events(events: DataFrame, vocabs: Vocabularies) -> DataFrame:
    """Events with user_idx/item_idx; rows whose user or item is unknown are dropped."""
    enc = encode(
        encode(events, vocabs.user, "user_id", "user_idx"), vocabs.item, "item_id", "item_idx"
    )
    return enc.where((F.col("user_idx") > 0) & (F.col("item_idx") > 0))


def encode_users(users: DataFrame, vocabs: Vocabularies) -> DataFrame:
    """(user_idx, <column>_idx...) for known users."""
    enc = encode(users, vocabs.user, "user_id", "user_idx").where(F.col("user_idx") > 0)
    for column, vocab in vocabs.user_categorical.items():
        enc = encode(enc, vocab, column, f"{column}_idx")
    return enc.dropDuplicates(["user_idx"])


def encode_items(items: DataFrame, vocabs: Vocabularies) -> DataFrame:
    """(item_idx, created, category_idxs: array<int>, [tag_idx: array<int>]) for known items."""
    enc = encode(items, vocabs.item, "item_id", "item_idx").where(F.col("item_idx") > 0)
    enc = enc.dropDuplicates(["item_idx"])
    base = enc.select("item_idx", "created")
    if vocabs.category is not None:
        cats = encode_array(enc, vocabs.category, "item_idx", "categories", "category_idxs")
        base = base.join(cats, "item_idx", "left")
    else:
        base = base.withColumn("category_idxs", F.array().cast("array<int>"))
    if vocabs.tag is not None:
        tags = encode_array(enc, vocabs.tag, "item_idx", "tags", "tag_idx").withColumn(
            "tag_idx", F.filter("tag_idx", lambda t: t > 0)
        )
        base = base.join(tags, "item_idx", "left")
    return base


def encode_ncf_test(test: DataFrame, vocabs: Vocabularies) -> DataFrame:
    """(user_idx, item_idx, negatives: array<int>) with the given negatives in given order.

    Negatives whose item is not in the vocabulary are dropped (none are with
    min_frequency 1: every item of the NCF files has a rating).
    """
    pairs = encode(
        encode(test, vocabs.user, "user_id", "user_idx"), vocabs.item, "item_id", "item_idx"
    )
    exploded = pairs.select("user_idx", "item_idx", F.posexplode("negatives").alias("pos", "neg"))
    negs = encode(exploded, vocabs.item, "neg", "neg_idx").where(F.col("neg_idx") > 0)
    ordered = negs.groupBy("user_idx", "item_idx").agg(
        F.array_sort(F.collect_list(F.struct("pos", "neg_idx"))).alias("p")
    )
    with_negs = ordered.select(
        "user_idx", "item_idx", F.transform("p", lambda x: x["neg_idx"]).alias("negatives")
    )
    known = pairs.where((F.col("user_idx") > 0) & (F.col("item_idx") > 0))
    return (
        known.select("user_idx", "item_idx")
        .join(with_negs, ["user_idx", "item_idx"], "left")
        .withColumn("negatives", F.coalesce("negatives", F.array().cast("array<int>")))
    )
