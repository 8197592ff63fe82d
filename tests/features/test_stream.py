"""features.stream: raw event files into the online store, each file once, replays harmless."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd

from features.stream import run
from peppercorn.config import Config
from peppercorn.event_rules import event_line, format_ts, validate_event
from peppercorn.online_store import open_store

NOW = time.time()


def at(seconds_ago: float) -> str:
    return format_ts(round((NOW - seconds_ago) * 1_000_000))


def line(eid: str, user: str, kind: str = "click", ago: float = 60.0, **values) -> str:
    body = {"event_id": eid, "user_id": user, "item_id": "r1", "event": kind, "ts": at(ago)}
    return json.dumps({**body, **values})


FIRST = [
    line("e1", "u1"),
    line("e2", "u1", "watch", ago=30, watch_seconds=12),
    line("e3", "u2", "gift", gift_value="5"),
    line("e1", "u1", ago=10),  # a later copy of e1: the store keeps the earlier
    line("e4", "u2", "share"),
    line("e5", "u2", "watch"),
    line("e6", "u3", ago=-3600),  # an hour ahead of the clock
    "{not json",
    "",
]
FIRST_REASONS = {
    "unknown_event": 1,
    "missing_watch_seconds": 1,
    "future_timestamp": 1,
    "malformed_json": 1,
    "empty_line": 1,
}
SECOND = [line("e7", "u3", "follow"), line("e2", "u1", "watch", ago=30, watch_seconds=12)]


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{x}\n" for x in lines), "utf-8")


def state(cfg: Config) -> tuple:
    store = open_store(cfg.online_store, cfg.online_store_path())
    try:
        return store.recent(["u1", "u2", "u3"], NOW), store.size(NOW)
    finally:
        store.close()


def test_each_file_once_and_replays_change_nothing(spark, tmp_path):
    cfg = Config.model_validate(
        {"dataset": {"kind": "synthetic", "name": "s"}, "paths": {"data_root": str(tmp_path)}}
    )
    raw = tmp_path / "s" / "raw" / "events"
    write(raw / "part-0.jsonl", FIRST)

    first = run(cfg, spark, once=True)
    assert (first["files"], first["lines"], first["kept"]) == (1, 9, 4)
    assert first["quarantined"] == FIRST_REASONS and first["new"] == 3
    recent, size = state(cfg)
    expected = {
        user: [e for e in sorted(events, key=lambda e: e.key(), reverse=True)]
        for user, events in {
            "u1": [validate_event(json.loads(FIRST[i]))[0] for i in (0, 1)],
            "u2": [validate_event(json.loads(FIRST[2]))[0]],
        }.items()
    }
    assert recent == expected and (size.users, size.events) == (2, 3)
    quarantine = pd.read_parquet(tmp_path / "s" / "quarantine" / "stream")
    assert quarantine["reason"].value_counts().to_dict() == FIRST_REASONS
    assert set(quarantine["source"]) == {"events"} and "{not json" in set(quarantine["raw"])
    checkpoint = tmp_path / "s" / "checkpoints" / "stream"
    assert json.loads(Path(f"{checkpoint}.json").read_text())["batch_id"] == first["last_batch"]

    again = run(cfg, spark, once=True)  # the same checkpoint: nothing to read
    assert (again["batches"], again["lines"]) == (0, 0) and state(cfg) == (recent, size)

    shutil.rmtree(checkpoint)  # every file read again: the store does not change
    replay = run(cfg, spark, once=True)
    assert (replay["lines"], replay["kept"], replay["new"]) == (9, 4, 0)
    assert state(cfg) == (recent, size)

    # A new file, as the events API writes it: only it is read.
    write(raw / "online-1.jsonl", [event_line(validate_event(json.loads(x))[0]) for x in SECOND])
    later = run(cfg, spark, once=True)
    assert (later["files"], later["lines"], later["kept"], later["new"]) == (1, 2, 2, 1)
    recent, size = state(cfg)
    assert [e.event_id for e in recent["u3"]] == ["e7"] and size.events == 4
