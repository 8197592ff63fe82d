"""Issue #20's done-when, on a real server: with versions 1 and 2 exported and registered in a
real MLflow SQLite registry, setting the alias `canary` to version 2 moves the running
server's `canary` label to version 2 within one poll, without a restart, and
`/v1/models/<name>/labels/canary:predict` answers from version 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, wait_ready
from tests.serving.conftest import build_version
from tests.serving.test_registry_labels import Registry, registry_template  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
POLL_S = 1.0
SLACK_S = 3.0  # that poll loads and warms up version 2: about 1.02 s in all here
# (user index, item index) pairs to score: their answers tell version 1 from version 2.
PAIRS = [(1, 1), (2, 5), (7, 30), (20, 12)]


def _wait_for(what: str, predicate, timeout: float) -> float:
    """Seconds until `predicate()` holds; fails the test after `timeout`."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if predicate():
            return time.monotonic() - began
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout} s")


def test_the_canary_alias_moves_the_live_servers_label_without_a_restart(
    repo,
    tmp_path,
    registry_template,  # noqa: F811
):
    v1 = build_version(repo, version=1, seed=1)
    v2 = build_version(repo, version=2, seed=2)
    registry = Registry(tmp_path / "registry", registry_template, repo)
    r1, r2 = registry.register(1), registry.register(2)
    registry.alias("stable", r1)  # read at the first poll: tells the reader is up
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"paths:\n  model_repository: {repo}\nmodel:\n  name: neumf\n"
        f"tracking:\n  uri: {registry.uri}\n"
        f"serving:\n  poll_interval_s: {POLL_S}\n"
        "  models:\n    neumf:\n      policy: specific\n      versions: [1]\n"
        "      labels: {canary: 1}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PEPPERCORN_TRACKING"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(config), "--port",
         str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_ready(base, proc)

            def labels() -> dict:
                return client.get("/v1/models/neumf").json().get("labels", {})

            _wait_for("the registry's first reading", lambda: "stable" in labels(), 60)
            assert labels() == {
                "canary": {"version": "1", "source": "config", "registry_version": None,
                           "error": None},
                "stable": {"version": "1", "source": "registry", "registry_version": r1,
                           "error": None},
            }  # fmt: skip

            registry.alias("canary", r2)

            def canary_on_2() -> bool:
                r = client.get("/v1/models/neumf/labels/canary")
                return (
                    r.status_code == 200 and r.json()["model_version_status"][0]["version"] == "2"
                )

            _wait_for("label canary on version 2", canary_on_2, POLL_S + SLACK_S)
            status = client.get("/v1/models/neumf/labels/canary").json()
            assert status["model_version_status"] == [
                {"version": "2", "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}}
            ]  # fmt: skip
            assert status["labels"] == {
                "canary": {"version": "2", "source": "registry", "registry_version": r2,
                           "error": None}
            }  # fmt: skip

            body = {"instances": [{"user_idx": u, "item_idx": i} for u, i in PAIRS]}
            on_canary = client.post("/v1/models/neumf/labels/canary:predict", json=body)
            assert on_canary.status_code == 200, on_canary.text
            # The oracle: sigmoid(user . item) of version 2's own embeddings, in numpy.
            want_v2 = [float(v2.score(u, [i])[0]) for u, i in PAIRS]
            want_v1 = [float(v1.score(u, [i])[0]) for u, i in PAIRS]
            assert on_canary.json()["predictions"] == pytest.approx(want_v2, rel=1e-5)
            assert max(abs(a - b) for a, b in zip(want_v1, want_v2, strict=True)) > 0.05
            # Requests without a label: still the policy's version 1.
            plain = client.post("/v1/models/neumf:predict", json=body)
            assert plain.json()["predictions"] == pytest.approx(want_v1, rel=1e-5)
            stable = client.post("/v1/models/neumf/labels/stable:predict", json=body)
            assert stable.json()["predictions"] == pytest.approx(want_v1, rel=1e-5)
        assert proc.poll() is None  # the same process all along: no restart
    finally:
        proc.terminate()
        proc.wait(timeout=20)
