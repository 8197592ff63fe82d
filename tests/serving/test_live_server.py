"""A real server (uvicorn in a subprocess on loopback) swapping model versions 10 times
while a client sends requests without pause: no request may fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import build_version, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def live_server(repo: Path, tmp_path: Path):
    port = _free_port()
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
            "serving",
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
