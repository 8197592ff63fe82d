"""The features stage: clean data -> vocabularies, profiles and evaluation datasets.

extract (`source.read_clean`) -> transforms (encode, labels, split, negatives,
profiles, normalize) -> load (each folder swapped in with `storage.atomic_replace`,
the manifest written last: its presence means the dataset is complete).
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from features import encode as enc
from features.history import user_history
from features.labels import interactions, positives
from features.manifest import MANIFEST_NAME, build_manifest, observe_digest, table_digest
from features.negatives import SALT_TEST, SALT_VALIDATION, sample_negatives
from features.normalize import apply_normalizer, fit_normalizer
from features.profiles import item_profile, user_profile
from features.source import FeaturesError, read_clean
from features.split import leave_one_out, split_with_given_test
from features.vocab import write_vocabs
from peppercorn import storage
from peppercorn.config import Config, join_uri

__all__ = ["TABLES", "run"]

TABLES = ("user_profile", "item_profile", "train", "seen", "validation", "test", "history")
_VALUE_COLUMNS = ("rating", "watch_seconds")


def _schema_cast(df: DataFrame) -> DataFrame:
    casts = {"user_idx": "int", "item_idx": "int", "negatives": "array<int>"}
    if "ts" in df.columns and dict(df.dtypes)["ts"].startswith("array"):
        casts["item_idx"] = "array<int>"  # the history table: one array of items per user
    return df.select(*[F.col(c).cast(casts[c]) if c in casts else F.col(c) for c in df.columns])


def _dense_spec(stats: dict[str, dict], table: str) -> list[dict[str, Any]]:
    return [{"name": c, "type": "dense", "table": table, "dim": 1, **s} for c, s in stats.items()]


def run(cfg: Config, spark: SparkSession) -> dict[str, Any]:
    """Build `<dataset_root>/features/` from `<dataset_root>/clean/`; returns the counts."""
    fc = cfg.features
    kind = cfg.dataset.kind
    root = cfg.dataset_root()
    out = join_uri(root, "features")
    data = read_clean(spark, join_uri(root, "clean"), kind)
    # A stale manifest must not vouch for folders this run is about to replace.
    storage.delete(spark, join_uri(out, MANIFEST_NAME))

    events = data.events.cache()
    vocabs = enc.build_vocabularies(data, fc.min_frequency)
    encoded = enc.encode_events(events, vocabs).cache()
    inter = interactions(encoded)
    facts = encoded.agg(
        F.max(F.unix_micros("ts")).alias("ref_us"),
        F.sum(F.when(F.col("event") == "impression", 1).otherwise(0)).alias("impressions"),
        *[
            F.count(F.when(F.col("event") != "impression", F.col(c))).alias(c)
            for c in _VALUE_COLUMNS
        ],
    ).first()
    if facts["ref_us"] is None:
        raise FeaturesError(f"{join_uri(root, 'clean', 'events')}: no events with known ids")
    ref_us = int(facts["ref_us"])
    value_columns = [c for c in _VALUE_COLUMNS if facts[c] > 0]

    pos = positives(encoded, fc.label).cache()
    if pos.limit(1).count() == 0:
        raise FeaturesError(
            f"features.label.kind={fc.label.kind!r} selects no positives in this dataset "
            f"(kind {kind!r}); choose a label kind its events support"
        )
    seen = inter.select("user_idx", "item_idx").distinct()
    k, seed, n_items = fc.eval_negatives, fc.seed, vocabs.item.size
    if data.ncf_test is not None:
        test = enc.encode_ncf_test(data.ncf_test, vocabs).cache()
        # The given test pairs count as seen whether or not the ETL kept them as events.
        seen = seen.unionByName(test.select("user_idx", "item_idx")).distinct()
        train, val_pairs = split_with_given_test(pos, test)
    else:
        train, val_pairs, test_pairs = leave_one_out(pos)
        test = sample_negatives(test_pairs, seen, n_items, k, seed, SALT_TEST)
    validation = sample_negatives(val_pairs, seen, n_items, k, seed, SALT_VALIDATION)

    # Profiles see no held-out interaction, so popularity and affinity features
    # cannot leak the answer to validation or test.
    heldout = test.select("user_idx", "item_idx").unionByName(val_pairs)
    # Read by both profiles, the category affinity and the exposures: cached, or each of them
    # would split the positives and draw the test negatives again.
    profile_inter = inter.join(heldout, ["user_idx", "item_idx"], "left_anti").cache()
    exposures = None
    if facts["impressions"] > 0:
        exposures = (
            encoded.where(F.col("event") == "impression")
            .select("item_idx", "event")
            .unionByName(profile_inter.where(F.col("event") == "click").select("item_idx", "event"))
        )
    n_categories = vocabs.category.size if vocabs.category is not None else 0
    items = enc.encode_items(data.items, vocabs)
    users_raw = user_profile(
        vocabs.user.table.select(F.col("idx").alias("user_idx")),
        profile_inter,
        enc.encode_users(data.users, vocabs),
        items.select("item_idx", "category_idxs"),
        ref_us,
        fc.windows_days,
        value_columns,
        n_categories,
    ).cache()
    items_raw = item_profile(
        vocabs.item.table.select(F.col("idx").alias("item_idx")),
        profile_inter,
        exposures,
        items,
        ref_us,
        fc.windows_days,
        value_columns,
        n_categories,
    ).cache()
    user_cats = [f"{c}_idx" for c in vocabs.user_categorical]
    user_dense = [
        c for c in users_raw.columns if c not in ("user_idx", "category_affinity", *user_cats)
    ]
    item_dense = [
        c for c in items_raw.columns if c not in ("item_idx", "category_multi_hot", "tag_idx")
    ]
    user_stats = fit_normalizer(users_raw, user_dense)
    item_stats = fit_normalizer(items_raw, item_dense)
    outputs = {
        "user_profile": apply_normalizer(users_raw, user_stats),
        "item_profile": apply_normalizer(items_raw, item_stats),
        "train": train,
        "seen": seen,
        "validation": validation,
        "test": test,
        "history": user_history(train, fc.history_length),
    }

    vocab_dir = join_uri(out, "vocab")
    storage.atomic_replace(
        spark, vocab_dir, lambda staging: write_vocabs(spark, vocabs.all(), vocabs.tokens, staging)
    )
    counts: dict[str, int] = {}
    digests: dict[str, str] = {}
    for name in TABLES:
        uri = join_uri(out, name)
        table, digest = observe_digest(_schema_cast(outputs[name]))
        storage.atomic_replace(spark, uri, lambda staging, t=table: t.write.parquet(staging))
        counts[name], digests[name] = digest()
    types = ",".join(f"{v.name}={v.id_type}" for v in vocabs.all())
    digests["vocab"] = f"{types}:{table_digest(vocabs.tokens)[1]}"

    features = _feature_spec(vocabs, user_stats, item_stats, n_categories)
    paths = {name: name for name in TABLES}
    paths.update({f"vocab/{v.name}": f"vocab/{v.name}.json" for v in vocabs.all()})
    summary = {
        "users": vocabs.user.size - 1,
        "items": vocabs.item.size - 1,
        "train": counts["train"],
        "validation": counts["validation"],
        "test": counts["test"],
        "seen": counts["seen"],
        "history": counts["history"],
    }
    text = build_manifest(
        dataset=cfg.dataset.name,
        kind=kind,
        config=cfg.model_dump(mode="json"),
        features=features,
        paths=paths,
        counts=summary,
        digests=digests,
        reference_time_us=ref_us,
        history_length=fc.history_length,
    )
    storage.write_text(spark, join_uri(out, MANIFEST_NAME), text)
    for df in (events, encoded, pos, profile_inter, users_raw, items_raw, vocabs.tokens):
        df.unpersist()
    return {**summary, "checksum": json.loads(text)["checksum"], "path": out}


def _feature_spec(
    vocabs: enc.Vocabularies, user_stats: dict, item_stats: dict, n_categories: int
) -> list[dict[str, Any]]:
    def categorical(name: str, table: str, vocab, **extra) -> dict[str, Any]:
        return {
            "name": name,
            "type": "categorical",
            "table": table,
            "vocab": vocab.name,
            "vocab_size": vocab.size,
            "dim": 1,
            **extra,
        }

    spec = [categorical("user_idx", "user", vocabs.user)]
    spec += [categorical(f"{c}_idx", "user", v) for c, v in vocabs.user_categorical.items()]
    spec += _dense_spec(user_stats, "user")
    if n_categories:
        spec.append(
            {
                "name": "category_affinity",
                "type": "vector",
                "table": "user",
                "vocab": "category",
                "dim": n_categories,
            }
        )
    spec.append(categorical("item_idx", "item", vocabs.item))
    spec += _dense_spec(item_stats, "item")
    if n_categories:
        spec.append(
            {
                "name": "category_multi_hot",
                "type": "vector",
                "table": "item",
                "vocab": "category",
                "dim": n_categories,
            }
        )
    if vocabs.tag is not None:
        spec.append(categorical("tag_idx", "item", vocabs.tag, multivalent=True))
    return spec
