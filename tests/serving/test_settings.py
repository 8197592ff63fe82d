"""Settings precedence: command line > environment > config file > default."""

from __future__ import annotations

import subprocess
import sys

from peppercorn.config import Config, ServingConfig
from serving.settings import Settings


def test_precedence_cli_env_config_default(monkeypatch):
    monkeypatch.delenv("PEPPERCORN_HOST", raising=False)
    monkeypatch.delenv("PEPPERCORN_PORT", raising=False)
    assert Settings.from_config(Config()).port == 8501
    cfg = Config(serving=ServingConfig(port=9000, host="0.0.0.0"))
    assert (Settings.from_config(cfg).host, Settings.from_config(cfg).port) == ("0.0.0.0", 9000)
    monkeypatch.setenv("PEPPERCORN_PORT", "9100")
    assert Settings.from_config(cfg).port == 9100
    assert Settings.from_config(cfg).host == "0.0.0.0"
    s = Settings.from_config(cfg, port=9200, host="127.0.0.2")
    assert (s.host, s.port) == ("127.0.0.2", 9200)
    monkeypatch.setenv("PEPPERCORN_ADMIN_TOKEN", "tok")
    assert Settings.from_config(cfg).admin_token == "tok"


def test_scoring_threads_default_to_the_usable_cores_and_follow_the_config(monkeypatch):
    import os

    monkeypatch.delenv("PEPPERCORN_SCORING_THREADS", raising=False)
    assert Settings.from_config(Config()).scoring_threads == len(os.sched_getaffinity(0))
    cfg = Config(serving=ServingConfig(scoring_threads=3))
    assert Settings.from_config(cfg).scoring_threads == 3
    monkeypatch.setenv("PEPPERCORN_SCORING_THREADS", "5")
    assert Settings.from_config(cfg).scoring_threads == 5


def test_the_model_repository_may_be_a_uri():
    for uri in ("models", "file:///srv/models", "s3a://bucket/models", "hdfs://nn:8020/models"):
        assert Settings.model_validate({"model_repository": uri}).model_repository == uri


def test_cli_reports_a_repository_it_cannot_open_without_a_traceback(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text("paths:\n  model_repository: nosuchfs://host/models\n")
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "nosuchfs://host/models: cannot open this filesystem" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("serving:\n  prot: 1\n")
    r = subprocess.run(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "serving.prot: unknown key" in r.stderr and "Traceback" not in r.stderr
