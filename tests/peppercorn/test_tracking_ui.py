"""`python -m peppercorn.tracking.ui`: the `mlflow ui` command line a config gives, the two
stores it refuses, and the real UI serving a run that `RunTracker` wrote (no browser: CI has
no Chromium; bench.tracking_ui takes the screenshots)."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from peppercorn.config import load_config
from peppercorn.tracking.store import TrackingTarget
from peppercorn.tracking.ui import TrackingUIError, main, start_ui, ui_command, ui_environment

MLFLOW = str(Path(sys.executable).parent / "mlflow")


@pytest.fixture(autouse=True)
def _no_ambient_store(monkeypatch):
    """The config alone decides the store here, whatever the developer's shell exports."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)


def _config(tmp_path: Path, **tracking) -> Path:
    cfg = {"dataset": {"kind": "synthetic", "name": "syn"},
           "paths": {"data_root": str(tmp_path / "data"), "model_repository": str(tmp_path / "m")},
           "tracking": tracking}  # fmt: skip
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_command_shows_the_sqlite_store_under_the_data_root(tmp_path):
    config = _config(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data/mlflow.db").touch()
    target = TrackingTarget.from_config(load_config(config))
    root = tmp_path.resolve() / "data"
    assert ui_command(target, "0.0.0.0", 5123) == [
        MLFLOW, "ui",
        "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
        "--registry-store-uri", f"sqlite:///{root}/mlflow.db",
        "--default-artifact-root", f"file://{root}/mlartifacts",
        "--host", "0.0.0.0", "--port", "5123", "--workers", "1",
    ]  # fmt: skip
    assert ui_environment({})["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert ui_environment({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}) == {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"
    }


def test_a_configured_sqlite_uri_and_registry_are_passed_as_given(tmp_path):
    db, registry = tmp_path / "runs.db", tmp_path / "models.db"
    db.touch()
    registry.touch()
    config = _config(tmp_path, uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{registry}")
    command = ui_command(TrackingTarget.from_config(load_config(config)))
    assert command[1:8] == [
        "ui", "--backend-store-uri", f"sqlite:///{db}", "--registry-store-uri",
        f"sqlite:///{registry}", "--default-artifact-root", f"file://{tmp_path}/mlartifacts",
    ]  # fmt: skip
    assert command[-6:] == ["--host", "127.0.0.1", "--port", "5000", "--workers", "1"]


def test_a_tracking_server_is_its_own_ui(tmp_path, capsys):
    config = _config(tmp_path, uri="http://127.0.0.1:5999")
    with pytest.raises(TrackingUIError, match="open http://127.0.0.1:5999 in a browser"):
        ui_command(TrackingTarget.from_config(load_config(config)))
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "tracking server http://127.0.0.1:5999" in err


def test_a_store_not_created_yet_says_run_make_train_first(tmp_path, capsys):
    config = _config(tmp_path)
    assert main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"no tracking store at {tmp_path.resolve()}/data/mlflow.db" in err
    assert "run make train first" in err
    assert not (tmp_path / "data/mlflow.db").exists()  # looking did not create it


def test_a_bad_config_or_port_is_a_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tracking:\n  urx: 1\n")
    assert main(["--config", str(bad)]) == 2
    assert "tracking.urx: unknown key" in capsys.readouterr().err
    assert main(["--config", str(_config(tmp_path)), "--port", "70000"]) == 2
    assert "a port is 1..65535" in capsys.readouterr().err


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_the_real_ui_serves_its_page_and_lists_the_tracked_run(tmp_path, monkeypatch):
    from peppercorn.tracking.runs import RunTracker

    monkeypatch.delenv("PEPPERCORN_TRACKING")
    cfg = load_config(_config(tmp_path))
    with RunTracker.start(cfg, "test", run_name="lr 0.01") as tracker:
        tracker.log_params({"training": {"learning_rate": 0.01}})
        tracker.log_epoch("select", {"epoch": 1, "loss": 0.75, "val_ndcg@10": 0.25})
        tracker.log_epoch("select", {"epoch": 2, "loss": 0.5, "val_ndcg@10": 0.375})
        run_id, experiment_id = tracker.run_id, tracker.experiment_id
    assert run_id is not None
    ui = start_ui(TrackingTarget.from_config(cfg), tmp_path / "ui.log", timeout_s=120)
    try:
        with urllib.request.urlopen(ui.url + "/", timeout=30) as answer:
            page = answer.read().decode()
        assert answer.status == 200 and "<title>MLflow</title>" in page
        found = _post(f"{ui.url}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id]})
        (run,) = found["runs"]
        assert run["info"]["run_id"] == run_id and run["info"]["run_name"] == "lr 0.01"
        assert run["info"]["status"] == "FINISHED"
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics == {"train/loss": 0.5, "val/ndcg_at_10": 0.375}  # the last epoch's
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert params == {"training.learning_rate": "0.01"}
        query = f"run_id={run_id}&metric_key=train/loss"
        with urllib.request.urlopen(f"{ui.url}/api/2.0/mlflow/metrics/get-history?{query}") as a:
            history = json.loads(a.read())["metrics"]
        assert sorted((m["step"], m["value"]) for m in history) == [(1, 0.75), (2, 0.5)]
    finally:
        ui.stop()
    assert ui.process.poll() is not None
    with pytest.raises(ProcessLookupError):  # the server it started went with it
        os.killpg(ui.process.pid, 0)
