"""Settings precedence: command line > environment > config file > default."""

from __future__ import annotations

import subprocess
import sys

import pytest

from peppercorn.config import Config, ServingConfig
from serving.settings import Settings, local_path


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


def test_model_repository_must_be_local():
    assert str(local_path("file:///srv/models")) == "/srv/models"
    with pytest.raises(ValueError, match="only local paths and file:// URIs"):
        local_path("hdfs://nn/models")


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("serving:\n  prot: 1\n")
    r = subprocess.run(
        [sys.executable, "-m", "serving", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "serving.prot: unknown key" in r.stderr and "Traceback" not in r.stderr
