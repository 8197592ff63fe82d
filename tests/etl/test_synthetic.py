"""Synthetic raw logs: hand-written lines of each broken kind, and the generator's own output."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import etl
from tests.etl.conftest import (
    expected_summary,
    make_config,
    quarantine_counts,
    summary_of,
    write_lines,
)

USER_HEADER = "user_id,age_band,gender,city_tier,device,signup_date"
USERS = [
    ("u000001,18-24,F,tier1,ios,2026-01-05", None),
    ("u000002,25-34,M,tier2,android,2026-02-11", None),
    ("u000003,35-44,F,tier3,web,", None),
    (",25-34,M,tier2,android,2026-02-11", "missing_user_id"),
    ("u000004,25-34,M,tier2,android,yesterday", "bad_signup_date"),
    ("u000005,25-34,M", "malformed_csv"),
    ("u000001,18-24,F,tier1,ios,2026-01-05", "duplicate"),
]
ITEMS = [
    ('{"item_id": "r00001", "streamer_id": "s1", "category": "gaming", "tags": ["fps"], '
     '"created_at": "2026-08-14"}', None),
    ('{"item_id": "r00002", "streamer_id": "s2", "category": "music", "created_at": null}', None),
    ('{"item_id": "r00003", "category": "music", "tags": []', "malformed_json"),
    ('{"streamer_id": "s4", "category": "music"}', "missing_item_id"),
    ('{"item_id": "r00005", "created_at": "14/08/2026"}', "bad_created_at"),
]  # fmt: skip


def event(eid, user="u000001", item="r00001", kind="click", ts="2026-10-03T21:14:05Z",
          watch=None, gift=None, drop=()):  # fmt: skip
    body = {"event_id": eid, "user_id": user, "item_id": item, "event": kind, "ts": ts,
            "watch_seconds": watch, "gift_value": gift}  # fmt: skip
    return json.dumps({k: v for k, v in body.items() if k not in drop})


EVENTS = [
    (event("e1"), None),
    (event("e2", kind="watch", watch=312.0, ts="2026-10-04T00:00:01Z"), None),
    (event("e3", user="u000002", item="r00002", kind="gift", gift=5.0), None),
    (event("e4", kind="impression", ts="2026-10-02T23:59:59Z"), None),
    (event("e5", user="u000003", kind="follow"), None),
    (event("e1"), "duplicate"),
    (event("e1", kind="impression"), "duplicate"),  # same event_id, later in the sort order
    (event("e6", drop=("user_id",)), "missing_user_id"),
    (event("e7", user=""), "missing_user_id"),
    (event("e8", kind="share"), "unknown_event"),
    (event("e9", ts="not-a-time"), "bad_timestamp"),
    (event("e10", kind="watch", watch=-3.0), "negative_watch_seconds"),
    (event("e11", kind="watch"), "missing_watch_seconds"),
    (event("e12", kind="gift", gift=-1.0), "negative_gift_value"),
    (event("e13", user="u999999"), "unknown_user"),
    (event("e14", user="u000004"), "unknown_user"),  # that user's line was quarantined
    (event("e15", item="r00003"), "unknown_item"),
    (event("e16")[:30], "malformed_json"),
    ("", "empty_line"),
    (event("e17", drop=("event_id",)), "missing_event_id"),
]


def write_raw(raw, events_lines, events_header=None):
    write_lines(raw / "users" / "part-00000.csv", [USER_HEADER] + [u for u, _ in USERS])
    write_lines(raw / "items" / "part-00000.json", [i for i, _ in ITEMS])
    head = [events_header] if events_header else []
    half = len(events_lines) // 2
    # Two part files, each with its own header, as Spark writes them.
    write_lines(raw / "events" / "part-00000", head + events_lines[:half])
    write_lines(raw / "events" / "part-00001", head + events_lines[half:])
    write_lines(raw / "events" / "_SUCCESS", [])


@pytest.fixture(scope="module")
def synthetic(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    cfg = make_config(out, "synthetic")
    root = out / cfg.dataset.name
    write_raw(root / "raw", [e for e, _ in EVENTS])
    return root, etl.run(cfg, spark)


def test_summary_and_quarantine_counts(synthetic, spark):
    root, result = synthetic
    expected = {
        "users": expected_summary(USERS),
        "items": expected_summary(ITEMS),
        "events": expected_summary(EVENTS),
    }
    assert summary_of(root) == expected
    for table, counts in expected.items():
        assert quarantine_counts(spark, result["output"], table) == counts["quarantined"]


def test_clean_tables_hold_typed_values(synthetic, spark):
    _, result = synthetic
    clean = result["output"]
    events = spark.read.parquet(f"{clean}/events").toPandas().set_index("event")
    assert sorted(events.index) == ["click", "follow", "gift", "impression", "watch"]
    assert events.loc["watch", "watch_seconds"] == 312.0
    assert events.loc["gift", "gift_value"] == 5.0
    assert events.loc["click", "ts"].to_pydatetime().replace(tzinfo=None) == dt.datetime(
        2026, 10, 3, 21, 14, 5
    )
    assert str(events.loc["impression", "dt"]) == "2026-10-02"
    items = spark.read.parquet(f"{clean}/items").toPandas().set_index("item_id")
    assert list(items.loc["r00001", "categories"]) == ["gaming"]
    assert list(items.loc["r00001", "tags"]) == ["fps"]
    assert list(items.loc["r00002", "tags"]) == [] and items.loc["r00002", "created"] is None
    users = spark.read.parquet(f"{clean}/users").toPandas()
    assert sorted(users["user_id"]) == ["u000001", "u000002", "u000003"]
    assert set(users.columns) == {"user_id", "age_band", "gender", "city_tier", "device"}


CSV_HEADER = "event_id,user_id,item_id,event,ts,watch_seconds,gift_value"
CSV_EVENTS = [
    ("e1,u000001,r00001,click,2026-10-03T21:14:05Z,,", None),
    ("e2,u000001,r00001,watch,2026-10-03T21:15:05Z,30.5,", None),
    ("e3,,r00001,click,2026-10-03T21:14:05Z,,", "missing_user_id"),
    ("e4,u000001,r00001,click", "malformed_csv"),
    ("e5,u000001,r00001,watch,2026-10-03T21:14:05Z,abc,", "bad_watch_seconds"),
    ("e1,u000001,r00001,click,2026-10-03T21:14:05Z,,", "duplicate"),
]


def test_csv_events(spark, tmp_path):
    cfg = make_config(tmp_path, "synthetic", synthetic={"format": "csv"})
    root = tmp_path / cfg.dataset.name
    write_raw(root / "raw", [e for e, _ in CSV_EVENTS], CSV_HEADER)
    result = etl.run(cfg, spark)
    assert result["tables"]["events"] == expected_summary(CSV_EVENTS)


def test_generator_output_quarantines_exactly_what_it_broke(spark, tmp_path):
    datagen = pytest.importorskip("datagen")
    cfg = make_config(
        tmp_path,
        "synthetic",
        synthetic={"users": 60, "items": 25, "events": 4000, "days": 5,
                   "malformed_fraction": 0.05, "files": 2},
    )  # fmt: skip
    datagen.generate(cfg, spark)
    success = json.loads((tmp_path / cfg.dataset.name / "raw" / "_SUCCESS.json").read_text())
    result = etl.run(cfg, spark)
    broken = {
        ("malformed_json" if kind == "malformed_line" else kind): n
        for kind, n in success["counts"]["malformed_events_by_kind"].items()
        if n
    }
    events = result["tables"]["events"]
    assert events["read"] == 4000
    assert events["quarantined"] == broken
    assert events["kept"] == 4000 - success["counts"]["malformed_events"]
    assert result["tables"]["users"] == {"read": 60, "kept": 60, "quarantined": {}}
    assert result["tables"]["items"] == {"read": 25, "kept": 25, "quarantined": {}}
