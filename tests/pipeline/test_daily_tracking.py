"""The daily run with tracking on: its run is recorded, the version its gate promotes gets the
registry's promotion alias, and the next day's gate beats the version that alias names, not
the repository's latest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peppercorn.config import load_config
from peppercorn.tracking import TrackingTarget
from peppercorn.tracking.runs import read_runs
from pipeline.cli import main
from tests.pipeline.test_daily import GOOD, WORSE, _config, _daily, _features, _summary


@pytest.fixture
def tracking_on(monkeypatch):
    monkeypatch.delenv("PEPPERCORN_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_the_gate_moves_the_alias_and_the_next_gate_beats_the_aliased_version(
    spark, tmp_path, tracking_on, capsys
):
    root = _features(tmp_path)
    good = _config(root, GOOD)
    assert _daily(good, "2026-10-31", "--from-step", "train") == 0
    first = _summary(good, "2026-10-31")
    export = next(s for s in first["steps"] if s["name"] == "export")
    assert export["alias"] == {"name": "stable", "registry_version": "1"}
    assert first["serving_version_chosen_by"].startswith("latest")

    target = TrackingTarget.from_config(load_config(good))
    client = target.client()
    stable = client.get_model_version_by_alias("gmf", "stable")
    assert stable.tags["peppercorn.version"] == "1"

    # `make train` exports version 2: registered, but no alias moves to it.
    assert main(["train", "--config", str(good)]) == 0
    assert client.get_model_version_by_alias("gmf", "stable").version == stable.version

    worse = _config(root, WORSE, name="worse")
    assert _daily(worse, "2026-11-01", "--from-step", "train") == 0
    second = _summary(worse, "2026-11-01")
    assert second["serving_version_before"] == 1  # the alias's, while the latest is 2
    assert second["serving_version_chosen_by"] == "alias stable (registry version 1)"
    assert second["gate"]["serving_version"] == 1 and second["gate"]["promote"] is False
    assert client.get_model_version_by_alias("gmf", "stable").version == stable.version

    runs = {r.tags.get("peppercorn.dt", "train"): r for r in read_runs(target, artifacts=True)}
    assert set(runs) == {"2026-10-31", "2026-11-01", "train"}
    day1, day2 = runs["2026-10-31"], runs["2026-11-01"]
    assert day1.tags["peppercorn.source"] == "pipeline daily" and day1.status == "FINISHED"
    assert day1.tags["peppercorn.gate"] == "promoted"
    assert day2.tags["peppercorn.gate"] == "refused" and "peppercorn.version" not in day2.tags
    assert "daily" in day1.artifacts
    local = client.download_artifacts(day2.run_id, "daily/summary.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged == {**second, "online_store": logged["online_store"]}
