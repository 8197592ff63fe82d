"""End to end, as a user runs it: etl -> train -> serve, each `python -m pipeline ...` in a
subprocess, on a fresh small synthetic dataset under tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from peppercorn.config import load_config
from peppercorn.tracking import TrackingTarget
from peppercorn.tracking.runs import read_runs
from tests.processes import free_port, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent


# As a user runs it: tracking on, into the default store under the data root.
ENV = {k: v for k, v in os.environ.items() if k != "PEPPERCORN_TRACKING"}


def _step(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, env={**ENV, "PYTHONUNBUFFERED": "1"}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stderr[-3000:]}"
    return proc


def test_etl_train_serve(tmp_path):
    port = free_port()
    config = tmp_path / "e2e.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"kind": "synthetic", "name": "e2e", "synthetic": {
            "users": 150, "items": 200, "events": 40_000, "days": 10, "files": 2}},
        # Few enough negatives that even the busiest user has that many unseen items.
        "features": {"eval_negatives": 50},
        "paths": {"data_root": str(tmp_path / "data"),
                  "model_repository": str(tmp_path / "models")},
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "1g"},
        "model": {"name": "gmf", "params": {"factors": 16}},
        "training": {"epochs": 8, "learning_rate": 0.01, "batch_size": 256,
                     "early_stopping_patience": 8},
        "serving": {"host": "127.0.0.1", "port": port, "poll_interval_s": 0.5},
    }))  # fmt: skip
    _step(["etl", "--config", str(config)], timeout=600)
    _step(["train", "--config", str(config)], timeout=600)
    version = tmp_path / "models" / "gmf" / "1"
    metrics = json.loads((version / "assets" / "metrics.json").read_text())
    assert metrics["hr@10"] > metrics["popularity_hr@10"], metrics
    # The run is in the default tracking store, its test figure the version's own.
    target = TrackingTarget.from_config(load_config(config))
    assert target.uri == f"sqlite:///{tmp_path}/data/mlflow.db"
    (run,) = read_runs(target)
    assert run.metrics["test/hr_at_10"] == pytest.approx(metrics["hr@10"])
    assert run.tags["peppercorn.version_uri"] == str(version)

    users = json.loads((version / "assets" / "vocab" / "user_id.json").read_text())["tokens"]
    items = json.loads((version / "assets" / "vocab" / "item_id.json").read_text())["tokens"]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(config)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        wait_ready(base, server)
        r = httpx.post(f"{base}/predict", json={"user_id": users[1], "item_ids": items[1:6]})
        assert r.status_code == 200, r.text
        scores = r.json()["scores"]
        assert len(scores) == 5 and all(0.0 <= s <= 1.0 for s in scores)
        assert r.json()["user_known"] is True

        r = httpx.post(f"{base}/recommend", json={"user_id": users[1], "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        got = [i["score"] for i in body["items"]]
        assert len(got) == 10 and got == sorted(got, reverse=True) and not body["fallback"]
        assert len({i["item_id"] for i in body["items"]}) == 10
        # Same pairs through /predict give the same scores: one model behind both endpoints.
        again = httpx.post(
            f"{base}/predict",
            json={"user_id": users[1], "item_ids": [i["item_id"] for i in body["items"]]},
        ).json()
        assert again["scores"] == pytest.approx(got, rel=1e-5)

        r = httpx.post(f"{base}/recommend", json={"user_id": "nobody-at-all", "k": 3})
        assert r.status_code == 200 and r.json()["fallback"] is True

        # A registry alias becomes the server's label of the same name, no restart.
        assert (
            "alias canary" in _step(["alias", "--config", str(config), "canary", "1"], 120).stdout
        )
        deadline = time.monotonic() + 30
        while (r := httpx.get(f"{base}/v1/models/gmf/labels/canary")).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.25)
        assert r.json()["model_version_status"][0]["version"] == "1"
    finally:
        server.terminate()
        server.wait(timeout=30)
