"""Experiment tracking (peppercorn.tracking): where runs go, what a run records, and that a
store that is off, down or failing never stops training."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from pathlib import Path

import pytest
import yaml

from peppercorn.config import Config, load_config
from peppercorn.tracking import TrackingTarget
from peppercorn.tracking.names import figure_name, metric_key
from peppercorn.tracking.runs import RunTracker, epoch_metrics, final_metrics, read_runs
from pipeline.cli import main
from training.data.synthetic import write_synthetic_dataset

TRAINING = {"epochs": 2, "learning_rate": 0.02, "batch_size": 64, "seed": 3}


@pytest.fixture
def tracking_on(monkeypatch):
    monkeypatch.delenv("PEPPERCORN_TRACKING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tracked")
    write_synthetic_dataset(root / "data" / "tiny", users=30, items=40, per_user=8,
                            eval_negatives=15)  # fmt: skip
    return root


def _config(root: Path, name: str = "c", **tracking) -> Path:
    body = {
        "dataset": {"kind": "synthetic", "name": "tiny"},
        "paths": {"data_root": str(root / "data"), "model_repository": str(root / name)},
        "model": {"name": "gmf", "params": {"factors": 4}},
        "training": TRAINING,
        "tracking": tracking,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- where runs go -------------------------------------------------------------------------


def test_default_store_is_sqlite_under_a_local_data_root(tmp_path, tracking_on):
    cfg = Config.model_validate({"paths": {"data_root": str(tmp_path / "d")}})
    target = TrackingTarget.from_config(cfg)
    assert target.uri == f"sqlite:///{tmp_path}/d/mlflow.db"
    assert target.registry_uri == target.uri
    assert target.artifact_location == f"file://{tmp_path}/d/mlartifacts"
    assert target.experiment == "synthetic" and target.enabled


def test_a_remote_data_root_keeps_the_store_here(tracking_on, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    cfg = Config.model_validate({"paths": {"data_root": "s3a://bucket/data"}})
    assert TrackingTarget.from_config(cfg).uri == f"sqlite:///{tmp_path}/.mlflow/mlflow.db"


def test_the_uri_comes_from_config_then_environment(tracking_on, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    env = TrackingTarget.from_config(Config())
    assert (env.uri, env.registry_uri, env.artifact_location) == (
        "http://tracking:5000", "http://tracking:5000", None,
    )  # fmt: skip
    cfg = Config.model_validate({"tracking": {"uri": "http://other:5000", "experiment": "x"}})
    assert (TrackingTarget.from_config(cfg).uri, TrackingTarget.from_config(cfg).experiment) == (
        "http://other:5000", "x",
    )  # fmt: skip


@pytest.mark.parametrize("value", ["off", "0", "false", "NO"])
def test_the_environment_turns_tracking_off(monkeypatch, value):
    monkeypatch.setenv("PEPPERCORN_TRACKING", value)
    assert not TrackingTarget.from_config(Config()).enabled


def test_a_bad_alias_name_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"tracking": {"promotion_alias": "no spaces"}}))
    with pytest.raises(ValueError, match="tracking.promotion_alias"):
        load_config(path)


# ---- names --------------------------------------------------------------------------------


def test_metric_names_mlflow_accepts_and_back():
    assert metric_key("test", "full_ndcg@50") == "test/full_ndcg_at_50"
    assert figure_name("val/hr_at_10") == ("val", "hr@10")


def test_epoch_and_final_figures_are_named_by_split():
    record = {"epoch": 3, "loss": 0.5, "val_hr@10": 0.6, "seconds": 2.0, "samples_per_sec": 9.0}
    assert epoch_metrics("select", record) == {
        "train/loss": 0.5, "val/hr_at_10": 0.6, "train/epoch_seconds": 2.0,
        "train/samples_per_sec": 9.0,
    }  # fmt: skip
    assert epoch_metrics("refit", {"epoch": 1, "loss": 0.4, "seconds": 1.0}) == {
        "refit/loss": 0.4, "refit/epoch_seconds": 1.0,
    }  # fmt: skip
    metrics = {
        "hr@10": 0.7, "full_recall@10": 0.2, "popularity_hr@10": 0.3, "validation_ndcg@10": 0.4,
        "best_epoch": 2, "train_seconds": 5.0, "refit": True, "dataset_checksum": "sha256:ab",
        "distributed_workers": 2,
    }  # fmt: skip
    assert final_metrics(metrics) == {
        "test/hr_at_10": 0.7, "test/full_recall_at_10": 0.2, "popularity/hr_at_10": 0.3,
        "best_val/ndcg_at_10": 0.4, "run/best_epoch": 2.0, "run/train_seconds": 5.0,
        "distributed/workers": 2.0,
    }  # fmt: skip


# ---- off, down, failing -------------------------------------------------------------------


def test_tracking_off_writes_no_store(features, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PEPPERCORN_TRACKING", "off")
    assert main(["train", "--config", str(_config(features, "off"))]) == 0
    assert not (features / "data" / "mlflow.db").exists()
    monkeypatch.delenv("PEPPERCORN_TRACKING")
    assert main(["train", "--config", str(_config(features, "off2", enabled=False))]) == 0
    assert not (features / "data" / "mlflow.db").exists()


def test_a_tracking_server_that_is_down_warns_once_and_training_goes_on(
    features, tracking_on, caplog, capsys
):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    config = _config(features, "down", uri=uri)
    with caplog.at_level(logging.WARNING, logger="peppercorn.tracking.runs"):
        assert main(["train", "--config", str(config)]) == 0
        assert main(["train", "--config", str(config)]) == 0
    warnings = [r.getMessage() for r in caplog.records if "tracking is off" in r.getMessage()]
    assert len(warnings) == 1 and f"tracking server {uri} does not answer" in warnings[0]
    assert sorted(p.name for p in (features / "down" / "gmf").iterdir()) == ["1", "2"]


def test_a_store_failing_mid_run_warns_once_and_records_nothing_more(tmp_path, tracking_on, caplog):
    cfg = Config.model_validate({"paths": {"data_root": str(tmp_path)}})
    tracker = RunTracker.start(cfg, "test")
    assert tracker.active
    client = TrackingTarget.from_config(cfg).client()
    client.delete_run(tracker.run_id)  # the store now refuses every write to this run
    with caplog.at_level(logging.WARNING, logger="peppercorn.tracking.runs"):
        tracker.log_epoch("select", {"epoch": 1, "loss": 0.5})
        tracker.log_epoch("select", {"epoch": 2, "loss": 0.4})
        tracker.log_params({"a": 1})
        tracker.end()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "could not log an epoch" in messages[0]
    assert not tracker.active


# ---- what a run records --------------------------------------------------------------------


def test_a_run_records_config_dataset_epochs_results_report_and_version(features, tracking_on):
    config = _config(features, "rec", experiment="rec")
    assert main(["train", "--config", str(config)]) == 0
    target = TrackingTarget.from_config(load_config(config))
    (run,) = read_runs(target, ["rec"], artifacts=True)
    assert run.status == "FINISHED" and run.tags["peppercorn.source"] == "pipeline train"
    assert run.params["training.learning_rate"] == "0.02"
    assert run.params["model.params.factors"] == "4"
    # The dataset as the features stage wrote it: its manifest is an independent record.
    manifest = json.loads((features / "data" / "tiny" / "features" / "manifest.json").read_text())
    assert run.params["data.checksum"] == manifest["checksum"]
    assert run.params["data.train"] == str(manifest["counts"]["train"])
    # The exported version's own metrics file, written by the export, not by tracking.
    version = features / "rec" / "gmf" / "1"
    exported = json.loads((version / "assets" / "metrics.json").read_text())
    assert run.metrics["test/hr_at_10"] == pytest.approx(exported["hr@10"])
    assert run.metrics["run/best_epoch"] == exported["best_epoch"]
    client = target.client()
    losses = client.get_metric_history(run.run_id, "train/loss")
    assert [m.step for m in losses] == [1, 2]
    assert run.tags["peppercorn.version"] == "1"
    assert run.tags["peppercorn.version_uri"] == str(version)
    digest = hashlib.sha256((version / "manifest.json").read_bytes()).hexdigest()
    assert run.tags["peppercorn.version_checksum"] == f"sha256:{digest}"
    assert set(run.artifacts) >= {"config.yaml", "report", "peppercorn-version"}
    report = [f.path for f in client.list_artifacts(run.run_id, "report")]
    assert {"report/report.md", "report/loss.png", "report/ranking.png"} <= set(report)
    (registered,) = client.search_model_versions("name = 'gmf'")
    assert registered.run_id == run.run_id and registered.tags["peppercorn.version"] == "1"
