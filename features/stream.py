"""`python -m features.stream --config FILE [--once]`: the raw event log into the online store.

A Spark Structured Streaming job over `<dataset_root>/raw/events` (the generator's files, the
logging system's, and `POST /v1/events`' `online-*.jsonl`): each micro-batch's lines are
classified by the ETL's own per-line rules (`etl.sources.synthetic.event_rules`) plus
`future_timestamp`; kept events go to the online store, rejected lines to
`<dataset_root>/quarantine/stream/batch=<id>/` in the quarantine layout.

Exactly once, in effect: the checkpoint (`<dataset_root>/checkpoints/stream`) makes Spark read
each file once and replay an unfinished batch with the same files; the store is idempotent by
`event_id`, and a batch's quarantine folder is overwritten, so a replay (after a crash, or of
every file after the checkpoint is deleted) or an event also posted to the API changes nothing.
The last finished batch is recorded in `<checkpoint>.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl.lines import INVALID_UTF8
from etl.sources.synthetic import EVENT_FIELDS, event_rules
from etl.validate import first_failure, quarantine_rows
from peppercorn import storage
from peppercorn.config import Config, ConfigError, join_uri, load_config
from peppercorn.event_rules import future_limit_micros
from peppercorn.online_store import Event, StoreUnavailable, open_store

__all__ = ["StreamError", "main", "run"]

_CHUNK = 5000  # kept events per store.append
_FILE = "_file"


class StreamError(ValueError):
    """A stream that cannot start (no raw events, a dataset without event logs)."""


def run(
    cfg: Config,
    spark: SparkSession,
    once: bool = True,
    trigger_s: float = 10.0,
    max_files: int | None = None,
    checkpoint: str | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Stream `<dataset_root>/raw/events` into the online store; the totals.

    `once`: every file not yet read, then return (`availableNow`); else a batch every
    `trigger_s` seconds until `stop` is set. `max_files`: files per batch (None: all).
    `checkpoint`: default `<dataset_root>/checkpoints/stream`; each finished batch's counts go
    to `<checkpoint>.json`.
    """
    if cfg.dataset.kind != "synthetic":
        raise StreamError(f"dataset.kind {cfg.dataset.kind!r} has no raw event log to stream")
    root = cfg.dataset_root()
    events_uri = join_uri(root, "raw", "events")
    if not storage.exists(spark, events_uri):
        raise StreamError(f"raw events not found: {events_uri}")
    checkpoint = checkpoint or join_uri(root, "checkpoints", "stream")
    fmt = cfg.dataset.synthetic.format
    store = open_store(cfg.online_store, cfg.online_store_path())
    totals: dict[str, Any] = {"batches": 0, "files": 0, "lines": 0, "kept": 0, "new": 0}
    reasons: Counter[str] = Counter()

    def batch(frame: DataFrame, batch_id: int) -> None:
        counts = _process(cfg, store, frame, batch_id, fmt, root)
        for key in ("files", "lines", "kept", "new"):
            totals[key] += counts[key]
        totals["batches"] += 1
        reasons.update(counts["quarantined"])
        shown = sum(counts["quarantined"].values())
        print(
            f"batch {batch_id}: {counts['files']} files, {counts['lines']} lines, "
            f"{counts['kept']} kept, {shown} quarantined, {counts['new']} new in the store",
            flush=True,
        )
        # Written after the batch's work: a crash before it replays the batch, which is safe.
        progress = {"batch_id": batch_id, **counts, "at": _utc_now()}
        storage.write_text(spark, f"{checkpoint}.json", json.dumps(progress, sort_keys=True))

    reader = spark.readStream.format("text")
    if max_files is not None:
        reader = reader.option("maxFilesPerTrigger", max_files)
    writer = reader.load(events_uri).writeStream.foreachBatch(batch)
    writer = writer.option("checkpointLocation", checkpoint).queryName("peppercorn-stream")
    if once:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{trigger_s} seconds")
    try:
        query = writer.start()
        try:
            while query.isActive and not (stop is not None and stop.is_set()):
                query.awaitTermination(1.0)
            _between_batches(query)
        finally:
            query.stop()
        if query.exception() is not None:
            raise query.exception()
    finally:
        store.close()
    return {
        **totals,
        "quarantined": dict(sorted(reasons.items())),
        "checkpoint": checkpoint,
        "last_batch": _last_batch(spark, checkpoint),
    }


def _process(
    cfg: Config, store, frame: DataFrame, batch_id: int, fmt: str, root: str
) -> dict[str, Any]:
    """One micro-batch: classify, quarantine the rejected lines, store the kept events."""
    now = time.time()
    classified = event_rules(_lines(frame, fmt), fmt)
    # The online rule: a clock far ahead would keep an event at the top of a history for long.
    too_late = F.unix_micros("ts") > F.lit(future_limit_micros(now, cfg.online_store.max_skew_s))
    classified = first_failure(classified, [("future_timestamp", too_late)]).persist()
    try:
        outcomes: Counter[str | None] = Counter()
        files = set()
        for row in classified.groupBy("reason", _FILE).count().collect():
            outcomes[row["reason"]] += row["count"]
            files.add(row[_FILE])
        kept = outcomes.pop(None, 0)
        quarantine = join_uri(root, "quarantine", "stream", f"batch={batch_id}")
        if outcomes:
            quarantine_rows(classified, "events").write.mode("overwrite").parquet(quarantine)
        else:  # a replay of this batch id after the checkpoint was reset may find none
            storage.delete(frame.sparkSession, quarantine)
        new = 0
        if kept:
            rows = classified.where(F.col("reason").isNull()).select(
                *EVENT_FIELDS[:4], F.unix_micros("ts").alias("ts"), *EVENT_FIELDS[5:]
            )
            chunk: list[Event] = []
            for row in rows.toLocalIterator():
                chunk.append(_event(row))
                if len(chunk) >= _CHUNK:
                    new += store.append(chunk, now=time.time())
                    chunk = []
            if chunk:
                new += store.append(chunk, now=time.time())
    finally:
        classified.unpersist()
    lines = kept + sum(outcomes.values())
    return {
        "files": len(files),
        "lines": lines,
        "kept": kept,
        "quarantined": dict(outcomes),
        "new": new,
    }


def _between_batches(query, wait_s: float = 60.0) -> None:
    """Let a running batch finish before the query is stopped (stopping interrupts it: safe,
    as it is replayed at the next start, but it would be done twice)."""
    deadline = time.monotonic() + wait_s
    while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
        time.sleep(0.2)


def _lines(frame: DataFrame, fmt: str) -> DataFrame:
    """The text source's `value` as etl.lines.read_lines gives lines (UTF-8): `raw`,
    `raw_bytes` (the bytes of an invalid line) and `reason` (`invalid_utf8`); and `_file`."""
    value = F.col("value")
    invalid = ~F.is_valid_utf8(value)
    lines = frame.select(
        F.input_file_name().alias(_FILE),
        F.make_valid_utf8(value).alias("raw"),
        F.when(invalid, value.cast("binary")).alias("raw_bytes"),
        F.when(invalid, F.lit(INVALID_UTF8)).cast("string").alias("reason"),
    )
    if fmt == "csv":  # each file's header line is not a record
        lines = lines.where(F.col("raw") != F.lit(",".join(EVENT_FIELDS)))
    return lines


def _event(row) -> Event:
    return Event(
        event_id=row["event_id"],
        user_id=row["user_id"],
        item_id=row["item_id"],
        event=row["event"],
        ts=row["ts"] / 1_000_000,
        watch_seconds=row["watch_seconds"],
        gift_value=row["gift_value"],
    )


def _last_batch(spark, checkpoint: str) -> int | None:
    try:
        return json.loads(storage.read_text(spark, f"{checkpoint}.json"))["batch_id"]
    except FileNotFoundError:
        return None


def _utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 done, 2 a problem the user can fix (one `error:` line)."""
    parser = argparse.ArgumentParser(prog="python -m features.stream", description=__doc__)
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--once", action="store_true", help="read what is there, then exit")
    parser.add_argument("--trigger-s", type=float, default=10.0, help="seconds between batches")
    parser.add_argument("--max-files", type=int, default=None, help="files per batch")
    parser.add_argument(
        "--checkpoint", default=None, help="default <dataset_root>/checkpoints/stream"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from peppercorn.spark import get_spark

    stop = threading.Event()
    # SIGTERM and Ctrl-C stop the query once its running batch is done (run's loop checks).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    spark = get_spark(cfg.spark, f"{cfg.spark.app_name}-stream")
    try:
        summary = run(cfg, spark, args.once, args.trigger_s, args.max_files, args.checkpoint, stop)
    except (StreamError, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
