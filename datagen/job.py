"""Spark job: write the synthetic raw logs, the hidden model and `_SUCCESS.json`.

The event log is produced inside Spark: `spark.range(blocks)` is mapped, block by block, to
text lines by `datagen.lines` in the Python workers, and written straight to files; no event
ever passes through the driver.  Each block's content depends only on (seed, block id), so
the data is the same whatever the partitioning or cluster.  Workers rebuild the world from the
config (a few seconds for a million users, once per Python worker) rather than receive it:
it is hundreds of megabytes at platform size, and the seed fixes it anyway.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from datagen.lines import CSV_HEADER, BlockSpec, block_lines
from datagen.malformed import MALFORMED_KINDS, plan_block
from datagen.world import (
    AGE_BANDS,
    CITY_TIERS,
    DEVICES,
    GENDERS,
    World,
    build_world,
    category_names,
    id_width,
)
from peppercorn import storage
from peppercorn.config import Config, SyntheticConfig, join_uri

__all__ = [
    "BLOCK_ROWS",
    "GENERATOR_VERSION",
    "block_spec",
    "events_frame",
    "generate",
    "malformed_counts",
    "stale_reason",
    "world_for",
]

# Rows per independently seeded block: large enough to vectorise well, small enough that a
# 10M-row log splits into hundreds of tasks' worth of work.
BLOCK_ROWS = 32_768
# Bumped whenever the same config would produce different events (2: the category feed
# reaches every category, stronger preference), so old raw logs are regenerated.
GENERATOR_VERSION = 2


def block_spec(syn: SyntheticConfig) -> BlockSpec:
    """The event-log layout implied by the synthetic config."""
    return BlockSpec(
        seed=syn.seed,
        total_rows=syn.events,
        total_malformed=round(syn.malformed_fraction * syn.events),
        block_rows=BLOCK_ROWS,
        fmt=syn.format,
        event_width=id_width(syn.events, 10),
        user_width=id_width(syn.users, 6),
        item_width=id_width(syn.items, 5),
    )


def malformed_counts(spec: BlockSpec) -> dict[str, int]:
    """Malformed lines per kind, from the per-block plans (no event data needed)."""
    totals = dict.fromkeys(MALFORMED_KINDS, 0)
    for block_id in range(spec.n_blocks()):
        start, n = spec.bounds(block_id)
        counts = plan_block(spec.seed, block_id, start, n, spec.total_rows, spec.total_malformed)
        for kind, value in counts.counts().items():
            totals[kind] += value
    line_kind = "malformed_csv" if spec.fmt == "csv" else "malformed_json"
    return {(line_kind if k == "malformed_line" else k): v for k, v in totals.items()}


# The world a Python worker last built, by its config: Spark reuses workers across tasks.
_WORLD_CACHE: dict[str, World] = {}


def world_for(syn: SyntheticConfig) -> World:
    """`build_world(syn)`, built once per process for the latest config asked for."""
    key = syn.model_dump_json(exclude={"events", "malformed_fraction", "format", "files"})
    if key not in _WORLD_CACHE:
        _WORLD_CACHE.clear()  # one world at a time: at platform size each is ~1 GB
        _WORLD_CACHE[key] = build_world(syn)
    return _WORLD_CACHE[key]


def events_frame(spark, syn: SyntheticConfig, spec: BlockSpec, partitions: int):
    """A one-column (`value`) DataFrame of raw event lines; CSV files each get a header."""

    def produce(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        first = True
        world = world_for(syn)
        for batch in batches:
            for block_id in batch.column(0).to_pylist():
                if first and spec.fmt == "csv":
                    yield pa.RecordBatch.from_pydict({"value": [CSV_HEADER]})
                first = False
                lines = block_lines(world, spec, block_id)
                yield pa.RecordBatch.from_arrays([lines], names=["value"])

    n_blocks = spec.n_blocks()
    blocks = spark.range(n_blocks, numPartitions=max(1, min(partitions, n_blocks)))
    return blocks.mapInArrow(produce, "value string")


def _users_frame(world: World, syn: SyntheticConfig, width: int) -> pd.DataFrame:
    start = syn.start_date
    return pd.DataFrame(
        {
            "user_id": [f"u{i:0{width}d}" for i in range(world.n_users)],
            "age_band": [AGE_BANDS[a] for a in world.age],
            "gender": [GENDERS[g] for g in world.gender],
            "city_tier": [CITY_TIERS[t] for t in world.tier],
            "device": [DEVICES[d] for d in world.device],
            "signup_date": [
                (start - _dt.timedelta(days=int(d))).isoformat() for d in world.signup_day
            ],
        }
    )


def _items_frame(world: World, syn: SyntheticConfig, width: int) -> pd.DataFrame:
    names = category_names(syn.categories)
    ids = [f"{i:0{width}d}" for i in range(world.n_items)]
    return pd.DataFrame(
        {
            "item_id": ["r" + i for i in ids],
            "streamer_id": ["s" + i for i in ids],
            "category": [names[c] for c in world.category],
            "tags": world.tags,
            "created_at": [
                (syn.start_date - _dt.timedelta(days=int(d))).isoformat() for d in world.created_day
            ],
        }
    )


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def _instants(world: World, relative: np.ndarray) -> pa.Array:
    return pa.array(world.start_epoch + relative, pa.timestamp("s", tz="UTC"))


def _vectors(rows: np.ndarray) -> pa.Array:
    # An Arrow list column built from one flat buffer: a million per-row numpy arrays in a
    # pandas column would take Spark's Arrow conversion several times longer.
    offsets = np.arange(0, rows.size + 1, rows.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(rows.ravel()))


def _truth_frames(world: World, users: pd.DataFrame, items: pd.DataFrame, syn: SyntheticConfig):
    names = category_names(syn.categories)
    truth_users = _arrow(users[["user_id", "age_band", "gender", "city_tier", "device"]])
    truth_users = truth_users.append_column("bias", pa.array(world.user_bias))
    truth_users = truth_users.append_column("factors", _vectors(world.user_factors))
    truth_items = pa.table(
        {
            "item_id": items["item_id"],
            "category": items["category"],
            "popularity": world.popularity,
            "bias": world.item_bias,
            "factors": _vectors(world.item_factors),
            "created": _instants(world, world.created),
        }
    )
    effects = [
        {"feature": feature, "level": level, "category": names[c], "effect": float(table[i, c])}
        for feature, levels, table in (
            ("age_band", AGE_BANDS, world.age_effect),
            ("device", DEVICES, world.device_effect),
        )
        for i, level in enumerate(levels)
        for c in range(len(names))
    ]
    frames = {"users": truth_users, "items": truth_items, "effects": pd.DataFrame(effects)}
    tl = world.timeline
    if tl is not None and tl.live is not None:
        frames["live"] = pa.table(
            {
                "item_id": pa.array(items["item_id"].to_numpy()[tl.window_room]),
                "start": _instants(world, tl.window_start),
                "end": _instants(world, tl.window_end),
            }
        )
    return frames


def _write_raw(spark, cfg: Config, staging: str, world: World, spec: BlockSpec) -> dict:
    syn = cfg.dataset.synthetic
    users = _users_frame(world, syn, spec.user_width)
    items = _items_frame(world, syn, spec.item_width)
    # Handed to Spark as Arrow tables: its pandas conversion is the slow part at 1M users.
    spark.createDataFrame(_arrow(users)).coalesce(1).write.mode("overwrite").csv(
        join_uri(staging, "users"), header=True
    )
    spark.createDataFrame(_arrow(items)).coalesce(1).write.mode("overwrite").json(
        join_uri(staging, "items")
    )
    for name, frame in _truth_frames(world, users, items, syn).items():
        spark.createDataFrame(frame).coalesce(1).write.mode("overwrite").parquet(
            join_uri(staging, "_truth", name)
        )
    events_frame(spark, syn, spec, syn.files).write.mode("overwrite").text(
        join_uri(staging, "events")
    )
    malformed = malformed_counts(spec)
    success = {
        "generator": "datagen",
        "generator_version": GENERATOR_VERSION,
        "parameters": syn.model_dump(mode="json"),
        "block_rows": spec.block_rows,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "counts": {
            "users": world.n_users,
            "items": world.n_items,
            "events": spec.total_rows,
            "malformed_events": spec.total_malformed,
            "malformed_events_by_kind": malformed,
        },
        "truth": "_truth/ holds the hidden model for evaluation only; ETL must ignore it",
    }
    storage.write_text(spark, join_uri(staging, "_SUCCESS.json"), json.dumps(success, indent=2))
    return success


def stale_reason(cfg: Config, spark) -> str | None:
    """Why `<dataset root>/raw/` must be (re)generated for `cfg`, or None when it is current.

    Raw logs written by another generator version or other parameters would silently train
    on data the config does not describe, so they count as stale.
    """
    marker = join_uri(cfg.dataset_root(), "raw", "_SUCCESS.json")
    if not storage.exists(spark, marker):
        return "no raw logs yet"
    try:
        written = json.loads(storage.read_text(spark, marker))
    except ValueError:
        return f"{marker} is not valid JSON"
    except Exception as exc:  # noqa: BLE001 - unreadable (e.g. a Hadoop checksum error): redo
        return f"{marker} cannot be read ({str(exc).splitlines()[0][:200]})"
    version = written.get("generator_version", 1)
    if version != GENERATOR_VERSION:
        return f"written by generator version {version}, this is version {GENERATOR_VERSION}"
    # `files` only splits the same rows differently, so it alone never makes logs stale.
    wanted = cfg.dataset.synthetic.model_dump(mode="json", exclude={"files"})
    # Logs written before a parameter existed were made with its default value.
    defaults = SyntheticConfig().model_dump(mode="json")
    params = {**defaults, **written.get("parameters", {})}
    changed = sorted(k for k in wanted if params.get(k) != wanted[k])
    if changed:
        return "dataset.synthetic changed: " + ", ".join(changed)
    return None


def generate(cfg: Config, spark) -> dict:
    """Generate `<dataset root>/raw/` for a synthetic dataset, replacing any previous output.

    Returns a summary (the counts written to `_SUCCESS.json`, the output URI and seconds).
    """
    if cfg.dataset.kind != "synthetic":
        raise ValueError(
            f"dataset.kind is {cfg.dataset.kind!r}: only 'synthetic' datasets are generated"
        )
    began = time.perf_counter()
    syn = cfg.dataset.synthetic
    world = build_world(syn)  # not cached: the driver needs it only until the files are written
    spec = block_spec(syn)
    raw = join_uri(cfg.dataset_root(), "raw")
    written: dict = {}
    storage.atomic_replace(
        spark, raw, lambda staging: written.update(_write_raw(spark, cfg, staging, world, spec))
    )
    return {
        "raw": raw,
        **written["counts"],
        "format": syn.format,
        "seconds": round(time.perf_counter() - began, 2),
    }
