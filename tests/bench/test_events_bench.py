"""bench.events end to end at a tiny size (SQLite store): every field of the JSON, events
ingested, delays measured, the temporary repository removed."""

import json
import tempfile

import pytest

from bench.events import main

BATCH = {"batch", "events_per_s", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "errors",
         "accepted", "server_cores", "recommend"}  # fmt: skip


@pytest.mark.slow
def test_a_tiny_run_ingests_events_and_measures_the_delay(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where it builds
    (tmp_path / "tmp").mkdir()
    argv = ["--users", "200", "--items", "80", "--seconds", "1", "--stores", "sqlite",
            "--clients", "2", "--recommend-rate", "20", "--delay-samples", "5",
            "--epochs", "1", "1", "--out", str(tmp_path / "out")]  # fmt: skip
    main(argv)
    r = json.loads((tmp_path / "out" / "events.json").read_text())
    assert {"date", "machine", "build", "targets", "stores"} <= set(r)
    assert {"cpu", "cores", "ram_gib", "commit"} <= set(r["machine"])
    run = r["stores"]["sqlite"]
    assert set(run["batches"]) == {"1", "100"}
    for size, batch in run["batches"].items():
        assert set(batch) >= BATCH, size
        assert batch["events_per_s"] > 0 and batch["accepted"] > 0 and batch["errors"] == 0
        assert batch["recommend"]["achieved_rps"] > 0
    delay = run["delay"]
    assert delay["delays_ms"] and delay["samples"] == len(delay["delays_ms"])
    assert delay["median_ms"] > 0 and delay["p99_ms"] >= delay["median_ms"]
    assert {"events_per_s", "p99_ms_batch_100", "delay_p99_ms"} == set(run["targets_met"])
    md = (tmp_path / "out" / "events.md").read_text()
    assert "## sqlite" in md and "Event-to-recommendation" in md
    assert not list((tmp_path / "tmp").iterdir())
