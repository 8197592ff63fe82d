"""Dataset manifest: feature spec, paths, counts, config and a content checksum.

The checksum must be stable across identical runs although Parquet file names
carry random UUIDs and row order depends on partitioning, so each table is
digested by Spark as (row count, sum of a 64-bit row hash) - order-free and
computed on the executors - and the manifest hashes those digests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

__all__ = ["MANIFEST_NAME", "build_manifest", "checksum", "observe_digest", "table_digest"]

MANIFEST_NAME = "manifest.json"


def _digest_columns(df: DataFrame) -> tuple[list[str], Column, Column]:
    columns = sorted(df.columns)
    row_hash = F.xxhash64(*[F.col(c) for c in columns]).cast("decimal(38,0)")
    return columns, F.count(F.lit(1)).alias("n"), F.sum(row_hash).alias("h")


def _digest(columns: list[str], n, h) -> tuple[int, str]:
    return int(n), f"{','.join(columns)}:{n}:{h or 0}"


def table_digest(df: DataFrame) -> tuple[int, str]:
    """(row count, order-independent content digest) of `df`."""
    columns, count, total = _digest_columns(df)
    row = df.agg(count, total).first()
    return _digest(columns, row["n"], row["h"])


def observe_digest(df: DataFrame) -> tuple[DataFrame, Callable[[], tuple[int, str]]]:
    """`df` with its `table_digest` computed by whatever action runs it next (a write).

    Returns the observed DataFrame and a function giving the digest once that action has
    finished. Digesting while writing saves a second scan of every written table.
    """
    columns, count, total = _digest_columns(df)
    observation = Observation()
    observed = df.observe(observation, count, total)

    def digest() -> tuple[int, str]:
        row = observation.get
        return _digest(columns, row["n"], row["h"])

    return observed, digest


def checksum(digests: Mapping[str, str]) -> str:
    """sha256 over the per-table digests, in table-name order."""
    text = "\n".join(f"{name}={digests[name]}" for name in sorted(digests))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(
    *,
    dataset: str,
    kind: str,
    config: dict[str, Any],
    features: list[dict[str, Any]],
    paths: dict[str, str],
    counts: dict[str, int],
    digests: Mapping[str, str],
    reference_time_us: int,
    history_length: int,
) -> str:
    """The manifest JSON text (docs/data-contracts.md §3)."""
    reference = dt.datetime.fromtimestamp(reference_time_us / 1e6, tz=dt.timezone.utc)
    manifest = {
        "dataset": dataset,
        "kind": kind,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "reference_time": reference.isoformat(),
        "config": config,
        "features": features,
        "paths": paths,
        "counts": counts,
        # The cap of each user's history (`history/`): the width of a model's history input.
        "history_length": history_length,
        "checksum": checksum(digests),
    }
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"
