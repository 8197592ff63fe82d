"""Serving never imports the training stage: not at import time (every module, `__main__`
included) and not while it loads a version and answers requests (lazy imports included).

The check runs in a fresh interpreter where `training` cannot be imported; every attempt is
also recorded, so an ImportError swallowed somewhere still fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.serving.conftest import build_version

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import importlib, pkgutil, sys, time

attempts = []

class NoTraining:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "training":
            attempts.append(name)
            raise ImportError(f"serving must not import {name}")
        return None

sys.meta_path.insert(0, NoTraining())
import serving
for info in pkgutil.walk_packages(serving.__path__, "serving."):
    importlib.import_module(info.name)

from fastapi.testclient import TestClient
from serving.main import create_app
from serving.settings import Settings

app = create_app(Settings(model_repository=sys.argv[1], poll_interval_s=0.1))
with TestClient(app) as client:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    answers = [
        client.post("/predict", json={"user_id": "u001", "item_ids": [10, 20]}),
        client.post("/recommend", json={"user_id": "u001", "k": 3}),
        client.get("/v1/models/neumf/metadata"),
    ]
    assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
assert not attempts, attempts
assert not [m for m in sys.modules if m.split(".")[0] == "training"]
print("ok")
"""


def test_serving_imports_nothing_from_training(repo):
    build_version(repo, "neumf", 1)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
