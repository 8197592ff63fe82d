"""The daily chain: lock, failing step, promotion gate, idempotent re-runs, summary, and the
same export as `make train`. Every test starts from its own copy of the data, so each passes
alone and in any order."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from batch.job import output_uri
from engine.saved import load
from peppercorn.config import load_config
from pipeline.cli import main
from pipeline.daily import summary_uri
from training.data.synthetic import write_synthetic_dataset

DAY = "2026-10-31"
GOOD = {"epochs": 3, "learning_rate": 0.02, "batch_size": 64, "seed": 1}
# Too small a step to learn anything in one epoch: a deliberately worse model.
WORSE = {"epochs": 1, "learning_rate": 1e-7, "batch_size": 64, "seed": 1}


def _config(root: Path, training: dict, name: str = "daily", **extra) -> Path:
    body = {
        "dataset": {"kind": "synthetic", "name": "tiny"},
        "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "model": {"name": "gmf", "params": {"factors": 8}},
        "training": training,
        "batch": {"k": 5, "promotion_margin": 0.0},
        **extra,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def _daily(config: Path, day: str = DAY, *args: str) -> int:
    return main(["daily", "--config", str(config), "--dt", day, *args])


def _summary(config: Path, day: str = DAY) -> dict:
    return json.loads(Path(summary_uri(load_config(config), day)).read_text())


def _top_k(config: Path, day: str = DAY) -> pd.DataFrame:
    df = pd.read_parquet(f"{output_uri(load_config(config))}/dt={day}")
    return df.sort_values(["user_id", "rank"]).reset_index(drop=True)


def _features(root: Path, users: int = 40, items: int = 50) -> Path:
    """A features dataset written straight in the §3 layout, so the chain starts at `train`."""
    write_synthetic_dataset(root / "data" / "tiny", users=users, items=items, per_user=10,
                            eval_negatives=20)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    """A day that promoted and exported version 1; tests work on copies (`promoted`)."""
    root = _features(tmp_path_factory.mktemp("daily"))
    assert _daily(_config(root, GOOD), DAY, "--from-step", "train") == 0
    return root


@pytest.fixture
def promoted(first_run, tmp_path) -> Path:
    """This test's own copy of the first run's data, models and summaries."""
    shutil.copytree(first_run, tmp_path, dirs_exist_ok=True)
    _config(tmp_path, GOOD)  # the first run's config, pointing at the copy
    return tmp_path


def test_first_run_promotes_and_a_rerun_gives_the_same_outputs(spark, promoted, capsys):
    config = promoted / "daily.yaml"
    first, first_top = _summary(config), _top_k(config)
    assert (first["status"], first["exported_version"], first["version"]) == ("succeeded", 1, 1)
    assert first["gate"]["promote"] and "no serving version" in first["gate"]["reason"]
    steps = {s["name"]: s for s in first["steps"]}
    assert steps["etl"]["status"] == "skipped"
    assert steps["batch"]["rows"]["recommendations"] == 40 * 5 == len(first_top)
    assert first["metrics"]["validation_ndcg@10"] > 0
    assert first["online_store"]["available"] and first["online_store"]["events"] == 0

    assert _daily(config, DAY, "--from-step", "train") == 0
    second, second_top = _summary(config), _top_k(config)
    assert sorted(p.name for p in (promoted / "models" / "gmf").iterdir()) == ["1"]
    assert [s["status"] for s in second["steps"]][1:4] == ["reused version 1"] * 3
    pd.testing.assert_frame_equal(first_top, second_top)
    assert second["version"] == first["version"] == 1
    assert (second["gate"], second["metrics"]) == (first["gate"], first["metrics"])
    out = capsys.readouterr().out
    assert "daily dt=2026-10-31: succeeded" in out and "reused version 1, from an earlier" in out


def test_gate_refuses_a_worse_model(spark, promoted, capsys):
    worse = _config(promoted, WORSE, name="worse")
    assert _daily(worse, "2026-11-01", "--from-step", "train") == 0
    summary = _summary(worse, "2026-11-01")
    gate = summary["gate"]
    assert gate["promote"] is False and gate["serving_version"] == 1
    assert gate["candidate"] < gate["serving"]
    # The serving version is rescored on this run's test split; the features did not change
    # since it was trained, so it scores what its trainer recorded on that split.
    v1 = json.loads((promoted / "models/gmf/1/assets/metrics.json").read_text())
    assert gate["serving"] == pytest.approx(v1["ndcg@10"], abs=1e-6)
    assert gate["candidate"] == summary["metrics"]["ndcg@10"]
    assert summary["exported_version"] is None and summary["version"] == 1
    assert sorted(p.name for p in (promoted / "models" / "gmf").iterdir()) == ["1"]
    assert set(_top_k(worse, "2026-11-01")["version"]) == {1}
    assert "refused" in capsys.readouterr().out


def test_a_serving_version_that_does_not_load_is_replaced(spark, promoted):
    config = promoted / "daily.yaml"
    (promoted / "models/gmf/1/variables.npz").write_bytes(b"not the saved weights")
    assert _daily(config, "2026-11-01", "--from-step", "train") == 0
    summary = _summary(config, "2026-11-01")
    gate = summary["gate"]
    assert gate["promote"] and gate["serving"] is None and gate["serving_version"] == 1
    assert gate["reason"].startswith("serving version 1 does not load (DATA_LOSS: cannot load")
    assert "checksum mismatch" in gate["reason"]
    assert summary["exported_version"] == 2 == summary["version"]
    assert set(_top_k(config, "2026-11-01")["version"]) == {2}


def test_batch_top_k_equals_online_recommend(spark, promoted):
    """The promoted real model, served by the app, answers /recommend as the batch wrote."""
    from fastapi.testclient import TestClient

    from serving.main import create_app
    from tests.serving.conftest import make_settings, wait_until

    top = _top_k(promoted / "daily.yaml")
    assert set(top["version"]) == {1}
    users = sorted(top["user_id"].unique())[::7]
    app = create_app(make_settings(promoted / "models"))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        for user in users:
            r = client.post("/recommend", json={"user_id": user, "k": 5, "exclude_seen": True})
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["version"], body["fallback"]) == (1, False)
            mine = top[top["user_id"] == user]
            assert [str(i["item_id"]) for i in body["items"]] == mine["item_id"].tolist()
            np.testing.assert_allclose(
                [i["score"] for i in body["items"]], mine["score"], rtol=1e-5, atol=1e-7
            )


def test_warm_start_carries_the_serving_weights(spark, promoted):
    """From v1's weights, a step too small to move them scores as v1 did: the gate passes
    (the same config without warm start is refused, see above)."""
    warm = _config(promoted, WORSE, name="warm",
                   batch={"k": 5, "promotion_margin": 0.001, "warm_start": True})  # fmt: skip
    assert _daily(warm, "2026-11-02", "--from-step", "train") == 0
    summary = _summary(warm, "2026-11-02")
    train = next(s for s in summary["steps"] if s["name"] == "train")
    assert train["warm_start"]["applied"] and train["warm_start"]["from"] == 1
    assert train["warm_start"]["variables"] >= 2
    gate = summary["gate"]
    assert gate["promote"] and abs(gate["candidate"] - gate["serving"]) < 1e-3
    assert summary["exported_version"] == 2 and set(_top_k(warm, "2026-11-02")["version"]) == {2}


def test_daily_and_make_train_export_the_same_version(spark, tmp_path):
    """The daily run's train and export steps are `make train`'s: same config, same export
    (weights bit for bit, and every asset but the timings in the report and metrics)."""
    by_make, by_daily = _features(tmp_path / "make"), _features(tmp_path / "daily")
    assert main(["train", "--config", str(_config(by_make, GOOD))]) == 0
    assert _daily(_config(by_daily, GOOD), DAY, "--from-step", "train") == 0
    one, two = (load(root / "models/gmf/1") for root in (by_make, by_daily))
    assert [v.name for v in one.graph.variables] == [v.name for v in two.graph.variables]
    for a, b in zip(one.graph.variables, two.graph.variables, strict=True):
        np.testing.assert_array_equal(one.session.get_value(a), two.session.get_value(b))
    timing = {"train_seconds", "wall_seconds", "train_samples_per_sec", "full_eval_seconds"}
    for name in sorted(set(one.assets) | set(two.assets)):
        if name.endswith(".png") or name == "report.md":
            continue
        if name == "metrics.json":
            a, b = (json.loads(x.assets[name]) for x in (one, two))
            assert {k: v for k, v in a.items() if k not in timing} == {
                k: v for k, v in b.items() if k not in timing
            }
        else:
            assert one.assets[name] == two.assets[name], name


def test_daily_honours_training_distributed(spark, tmp_path, capsys):
    """A setting `make train` honours is honoured by the daily run too: 3 workers on
    local[2] is refused by both, with the same message."""
    root = _features(tmp_path, users=20, items=30)
    training = {**GOOD, "distributed": {"workers": 3, "sync_every": 1}}
    config = _config(root, training)
    assert main(["train", "--config", str(config)]) == 2
    by_train = capsys.readouterr().err.strip()
    assert "workers is 3" in by_train and "local[3]" in by_train
    assert _daily(config, DAY, "--from-step", "train") == 1
    step = next(s for s in _summary(config)["steps"] if s["name"] == "train")
    assert step["status"] == "failed" and "workers is 3" in step["error"]


def test_a_concurrent_run_is_refused_and_touches_nothing(tmp_path, capsys):
    config = _config(tmp_path, GOOD)
    lock = tmp_path / "data" / ".locks" / "daily.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another run in progress
    try:
        before = sorted(str(p) for p in tmp_path.rglob("*"))
        assert _daily(config) == 3
        assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    finally:
        os.close(fd)
    assert "another daily run holds" in capsys.readouterr().err


def test_a_failing_step_stops_the_chain_and_is_named(spark, tmp_path, capsys):
    config = _config(tmp_path, GOOD, dataset={
        "kind": "movielens-100k", "name": "broken", "path": str(tmp_path / "absent")})  # fmt: skip
    assert _daily(config) == 1
    err = capsys.readouterr().err
    assert "step 'etl' failed" in err and len(err.strip().splitlines()) == 1
    summary = _summary(config)
    assert (summary["status"], summary["failed_step"]) == ("failed", "etl")
    assert [s["status"] for s in summary["steps"]] == ["failed"] + ["not run"] * 4
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dt", "31/10/2026"], "expected a date like"),
        (["--config", "absent.yaml"], "cannot read"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, args, message):
    config = _config(tmp_path, GOOD)
    assert main(["daily", "--config", str(config), *args]) == 2
    assert message in capsys.readouterr().err
