"""A real server (uvicorn in a subprocess on loopback): swapping model versions 10 times while
a client sends requests without pause fails no request, and a server started on an empty
repository serves the models exported after it started, without a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from peppercorn.model_repository import ModelRepository
from tests.processes import free_port
from tests.serving.conftest import build_version, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_server(repo: Path, tmp_path: Path):
    port = free_port()
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"paths:\n  model_repository: {repo}\nserving:\n  poll_interval_s: 0.1\n"
        "  port: 1\n"  # overridden by the environment, which the CLI overrides in turn
    )
    env = {**os.environ, "PEPPERCORN_PORT": "2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stdout.read()}")
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        yield base, ready
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_ten_version_swaps_under_load_fail_no_request(repo, live_server):
    base, ready = live_server
    build_version(repo, version=1, seed=1)
    wait_until(ready, timeout=60)
    stop = threading.Event()
    failures: list[str] = []
    versions_seen: set[int] = set()
    sent = [0]

    def client_loop() -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post("/predict", json={"user_id": "u003", "item_ids": [10, 20]})
                    t = client.post(
                        "/v1/models/neumf:predict",
                        json={"instances": [{"user_idx": 3, "item_idx": 1}]},
                    )
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                sent[0] += 2
                for resp in (r, t):
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code} {resp.text}")
                if r.status_code == 200:
                    versions_seen.add(r.json()["version"])

    thread = threading.Thread(target=client_loop)
    thread.start()
    try:
        wait_until(lambda: 1 in versions_seen, timeout=30)
        for version in range(2, 12):
            build_version(repo, version=version, seed=version)

            def swapped(v=version) -> bool:
                body = httpx.get(f"{base}/v1/models/neumf", timeout=5).json()
                states = {s["version"]: s["state"] for s in body["model_version_status"]}
                # swapped, and the client has been answered by the new version meanwhile
                return states == {str(v): "AVAILABLE"} and v in versions_seen

            wait_until(swapped, timeout=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert failures == []
    assert sent[0] > 50
    assert versions_seen == set(range(1, 12))
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'peppercorn_model_swaps_total{model="neumf"} 11.0' in metrics


def test_a_server_started_on_an_empty_repository_serves_models_exported_later(
    repo, tmp_path, live_server
):
    base, ready = live_server

    def listening() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(listening, timeout=60)
    time.sleep(1.0)  # several polls of an empty repository
    assert not ready()
    r = httpx.get(f"{base}/readyz", timeout=5)
    assert r.status_code == 503 and "not ready" in r.json()["error"]
    neumf = build_version(repo, "neumf", 1, seed=1)  # engine.saved.save: staged, renamed
    wait_until(ready, timeout=60)
    # A second model name, published the way training exports (manifest written last).
    gmf = build_version(tmp_path / "elsewhere", "gmf", 1, seed=5, item_id_type="string")
    files = ModelRepository(str(tmp_path / "elsewhere")).version("gmf", 1).files()
    assert ModelRepository(str(repo)).publish("gmf", files).version == 1

    def gmf_answers() -> bool:
        body = {"model": "gmf", "user_id": "u004", "item_ids": ["r003", "r007"]}
        return httpx.post(f"{base}/predict", json=body, timeout=5).status_code == 200

    wait_until(gmf_answers, timeout=60)
    for name, built, items in (("neumf", neumf, [30, 70]), ("gmf", gmf, ["r003", "r007"])):
        body = {"model": name, "user_id": "u004", "item_ids": items}
        r = httpx.post(f"{base}/predict", json=body, timeout=5)
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
        np.testing.assert_allclose(r.json()["scores"], built.score(4, [3, 7]), rtol=1e-5)
        rows = {"instances": [{"user_idx": 4, "item_idx": 3}]}
        r = httpx.post(f"{base}/v1/models/{name}:predict", json=rows, timeout=5)
        np.testing.assert_allclose(r.json()["predictions"], built.score(4, [3]), rtol=1e-5)
    assert ready()
