"""The ETL job: raw input → `<root>/clean/` (docs/data-contracts.md §2), swapped in atomically.

Every raw line ends up in exactly one place: a clean table or the quarantine with a reason.
`summary.json` counts both per table and the job refuses to publish output whose counts
do not add up to the lines it read.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.lines import EtlInputError, read_failure
from etl.sources import movielens, movielens_csv, ncf, synthetic
from etl.tables import Transformed
from etl.validate import quarantine_rows
from peppercorn import storage
from peppercorn.config import Config, join_uri

__all__ = ["EtlError", "EtlInputError", "extract", "load", "run", "transform"]

# Small per-entity tables are written as one file; events get one file per day.
_ENTITY_FILES = 1
_QUARANTINE_FILES = 2
# Every events column: rows equal in all of them are identical, so any order of them is.
_EVENT_ORDER = ("ts", "user_id", "item_id", "event", "rating", "watch_seconds", "gift_value")


class EtlError(RuntimeError):
    """The job's own consistency check failed; nothing was published."""


def raw_uri(cfg: Config) -> str:
    """Where the job reads its input: the generated raw logs or the configured folder."""
    if cfg.dataset.kind == "synthetic":
        return join_uri(cfg.dataset_root(), "raw")
    return cfg.dataset.path


def extract(cfg: Config, spark) -> tuple[dict[str, DataFrame], dict]:
    """Raw lines per table, and the source's parameters for `transform`."""
    ds, uri = cfg.dataset, raw_uri(cfg)
    if ds.kind == "synthetic":
        fmt = ds.synthetic.format
        return synthetic.extract(spark, uri, fmt), {"events_format": fmt}
    if ds.kind == "movielens-100k":
        return movielens.extract(spark, uri), {"genres": movielens.genres_of(spark, uri)}
    if ds.kind == "movielens-csv":
        return movielens_csv.extract(spark, uri), {}
    side = ds.side_path
    genres = movielens.genres_of(spark, side) if side else None
    return ncf.extract(spark, uri, side), {"genres": genres}


def transform(kind: str, raw: dict[str, DataFrame], params: dict) -> Transformed:
    """Dispatch to the source module of `kind` (pure: frames in, frames out)."""
    module = {
        "synthetic": synthetic,
        "movielens-100k": movielens,
        "movielens-csv": movielens_csv,
        "ncf": ncf,
    }[kind]
    return module.transform(raw, **params)


def load(
    spark,
    raw: dict[str, DataFrame],
    result: Transformed,
    uri: str,
    on_written: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """Write the clean tables, the quarantine and `summary.json` under `uri`.

    Returns (summary, rows written per clean table).

    `on_written(name)` runs after each table is written (tests use it to crash mid-write).
    """
    hook = on_written or (lambda name: None)
    frames = [df.persist(StorageLevel.DISK_ONLY) for df in result.classified.values()]
    try:
        quarantine = _union([quarantine_rows(df, name) for name, df in result.classified.items()])
        quarantine.coalesce(_QUARANTINE_FILES).write.parquet(join_uri(uri, "quarantine"))
        hook("quarantine")
        for name, df in result.outputs.items():
            _write_table(df, join_uri(uri, name), partition_by_day=name == "events")
            hook(name)
        summary = _summarise(raw, result.classified)
        storage.write_text(spark, join_uri(uri, "summary.json"), json.dumps(summary, indent=2))
        hook("summary.json")
        # A table that is a source's kept rows is already counted; derived ones are counted
        # from the persisted frames (cheaper than listing one file per day).
        rows = {
            name: summary[name]["kept"] if name in summary else df.count()
            for name, df in result.outputs.items()
        }
        return summary, rows
    finally:
        for df in frames:
            df.unpersist()


def run(cfg: Config, spark, *, on_written: Callable[[str], None] | None = None) -> dict:
    """ETL for `cfg`'s dataset; replaces `<root>/clean` atomically.

    Returns `{"tables": summary.json's content, "rows": rows written per clean table,
    "output": the clean folder's URI}`.  EtlInputError names an input that cannot be read.
    """
    try:
        raw, params = extract(cfg, spark)
        result = transform(cfg.dataset.kind, raw, params)
        clean = join_uri(cfg.dataset_root(), "clean")
        out: dict = {}

        def write(staging: str) -> None:
            out["tables"], out["rows"] = load(spark, raw, result, staging, on_written)

        storage.atomic_replace(spark, clean, write)
    except Exception as exc:
        # Spark reads lazily: an unreadable input file (a stale .crc, a vanished file)
        # fails whichever write or count runs first, as a long Java error.
        failure = read_failure(exc)
        if failure is None:
            raise
        raise failure from exc
    out["output"] = clean
    return out


def _write_table(df: DataFrame, uri: str, partition_by_day: bool) -> None:
    if partition_by_day:
        dated = df.withColumn("dt", F.date_format("ts", "yyyy-MM-dd"))
        # One file per day, rows in a stable order: reruns give identical datasets.
        ordered = dated.repartition("dt").sortWithinPartitions(*_EVENT_ORDER)
        ordered.write.partitionBy("dt").parquet(uri)
    else:
        df.coalesce(_ENTITY_FILES).write.parquet(uri)


def _summarise(raw: dict[str, DataFrame], classified: dict[str, DataFrame]) -> dict:
    """Per table: lines read, rows kept, rows quarantined by reason; two small jobs in all."""
    names = list(classified)
    lines = _union([raw[name].select(F.lit(name).alias("t")) for name in names])
    read = {r["t"]: r["count"] for r in lines.groupBy("t").count().collect()}
    outcomes = _union([classified[name].select(F.lit(name).alias("t"), "reason") for name in names])
    # One row per (table, reason code): a handful, whatever the data size.
    found = outcomes.groupBy("t", "reason").count().collect()
    summary = {}
    for name in names:
        by_reason = {r["reason"]: r["count"] for r in found if r["t"] == name}
        kept = by_reason.pop(None, 0)
        quarantined = dict(sorted(by_reason.items()))
        n_read = read.get(name, 0)
        if kept + sum(quarantined.values()) != n_read:
            raise EtlError(
                f"table {name!r}: read {n_read} lines but kept {kept} and quarantined "
                f"{sum(quarantined.values())}; refusing to publish"
            )
        summary[name] = {"read": n_read, "kept": kept, "quarantined": quarantined}
    return summary


def _union(frames: list[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out
