"""The daily run keeps the online store: what was posted since training stays, expired entries
go, the summary reports the size; an unavailable store is reported, never a failure."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

from peppercorn.config import Config
from peppercorn.online_store import Event, ItemState, open_store
from pipeline.daily import run_daily, summary_uri
from pipeline.store_upkeep import keep_store

DAY = "2026-10-31"
NOW = 1_800_000_000.0
TTL = 86400.0


def _config(root: Path, **store) -> Config:
    return Config.model_validate(
        {
            "dataset": {"kind": "synthetic", "name": "tiny"},
            "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
            "online_store": {"ttl_s": TTL, **store},
        }
    )


def _fill(cfg: Config, now: float = NOW) -> None:
    """Two users' events and two rooms' states, one of each older than the TTL at `now`."""
    store = open_store(cfg.online_store, cfg.online_store_path())
    try:
        events = [
            Event("e1", "u1", "r1", "watch", now - 60, watch_seconds=40.0),
            Event("e2", "u1", "r2", "click", now - 3600),
            Event("e3", "u2", "r1", "click", now - 10),
            Event("old", "u3", "r3", "click", now - TTL - 600),  # expired at `now`
        ]
        # Written while still fresh, so the store holds it until something drops it.
        assert store.append(events, now - TTL) == 4
        assert store.append(events, now - 120) == 0  # a replay adds nothing
        store.set_items([ItemState("r9", live=False, updated=now - 30)], now)
        store.set_items([ItemState("r8", live=False, updated=now - TTL - 600)], now - TTL)
    finally:
        store.close()


def _held(cfg: Config, at: float) -> dict[str, list[str]]:
    """The event ids the store holds per user, read at `at` (before the TTL cuts them off)."""
    store = open_store(cfg.online_store, cfg.online_store_path())
    try:
        return {
            u: [e.event_id for e in ev] for u, ev in store.recent(["u1", "u2", "u3"], at).items()
        }
    finally:
        store.close()


def test_keep_store_drops_the_expired_and_keeps_the_rest(tmp_path):
    cfg = _config(tmp_path)
    _fill(cfg)
    assert _held(cfg, NOW - TTL)["u3"] == ["old"]  # held before the upkeep
    report = keep_store(cfg, NOW)
    assert report["available"] and report["kind"] == "sqlite"
    assert report["expired"] == 2  # the old event and the old room's state
    assert (report["users"], report["events"], report["items"]) == (2, 3, 1)
    # Read as of a time the old event was unexpired: it is gone from the file, not filtered.
    assert _held(cfg, NOW - TTL) == _held(cfg, NOW) == {"u1": ["e1", "e2"], "u2": ["e3"]}
    again = keep_store(cfg, NOW)  # nothing more to drop: the upkeep never wipes
    assert again["expired"] == 0 and again["events"] == 3


def test_an_unavailable_store_is_reported_not_raised(tmp_path, caplog):
    with socket.socket() as s:  # a port nothing listens on: Redis is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = _config(tmp_path, kind="redis", redis_url=f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    with caplog.at_level(logging.WARNING, logger="pipeline.store_upkeep"):
        report = keep_store(cfg, NOW)
    assert report["available"] is False and report["kind"] == "redis"
    assert report["error"].startswith("StoreUnavailable: ") and str(port) in report["error"]
    assert "not kept by this run" in caplog.text and report["error"] in caplog.text

    blocked = tmp_path / "a-file"
    blocked.write_text("")  # SQLite cannot create its file under a plain file
    report = keep_store(_config(tmp_path, path=str(blocked / "store.sqlite")), NOW)
    assert report["available"] is False and "StoreUnavailable" in report["error"]


def test_the_daily_run_keeps_the_store_and_reports_its_size(tmp_path):
    """A daily run (here one whose only step, batch, fails at once: no model yet) keeps the
    store whatever the chain did, and its summary holds the store's size."""
    cfg, now = _config(tmp_path), time.time()  # the daily run expires at the clock
    _fill(cfg, now)
    summary = run_daily(cfg, DAY, from_step="batch")
    assert summary["status"] == "failed" and summary["failed_step"] == "batch"
    store = summary["online_store"]
    assert store["available"] and store["expired"] == 2
    assert (store["users"], store["events"], store["items"]) == (2, 3, 1)
    assert json.loads(Path(summary_uri(cfg, DAY)).read_text())["online_store"] == store
    assert _held(cfg, now - TTL) == {"u1": ["e1", "e2"], "u2": ["e3"]}
