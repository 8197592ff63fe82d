"""A real S3-compatible server for the tests: moto's standalone server, as a separate process.

Not moto's in-process mocks: the server is a real HTTP endpoint, so pyarrow's S3 client (its
C++ AWS SDK, which no Python mock reaches), a child process or a Spark job all talk to it the
way they would talk to MinIO or AWS.

Fixtures (imported into `tests/conftest.py`, so every test can ask for them):

- `s3_server` (session): an `S3Server` - `endpoint` (`http://127.0.0.1:<port>`), `env` (the
  `AWS_*` variables that point a client at it, fake credentials included), `create_bucket()`
  (a fresh, empty bucket's name), `uri(bucket, *parts)` and `child_env()` (this process's
  environment plus `env`, for `subprocess.run(..., env=s3_server.child_env())`). Skips, naming
  why, where moto is not installed or the server does not start.
- `s3_uri` (function): sets `s3_server.env` in this process (monkeypatch, undone after the
  test) and returns `s3://<a fresh bucket>`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["S3Server", "s3_server", "s3_uri", "start_s3_server"]

_START_TIMEOUT_S = 30.0
# Variables that would point an S3 client somewhere else than the test server.
_OVERRIDING = ("AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server and how to reach it."""

    endpoint: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen = field(repr=False, compare=False)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (default: a fresh unique name) and return its name."""
        name = name or f"peppercorn-{uuid.uuid4().hex[:12]}"
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise OSError(f"creating bucket {name}: HTTP {response.status}")
        return name

    def uri(self, bucket: str, *parts: str) -> str:
        """`s3://<bucket>/<parts...>`."""
        return "/".join(["s3:/", bucket, *(p.strip("/") for p in parts)])

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a child process that talks to this server: `base` (default:
        this process's environment) with `env` on top."""
        base = os.environ if base is None else base
        return {**{k: v for k, v in base.items() if k not in _OVERRIDING}, **self.env}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_s3_server(log: Path, attempts: int = 3) -> S3Server:
    """Start moto's server on a free loopback port and wait until it answers; OSError naming
    why when it does not (its output is in `log`)."""
    reason = ""
    for _ in range(attempts):  # a port taken between choosing it and binding it: try another
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(endpoint):
                env = {
                    "AWS_ACCESS_KEY_ID": "peppercorn-test",
                    "AWS_SECRET_ACCESS_KEY": "peppercorn-test-secret",
                    "AWS_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL": endpoint,
                }
                return S3Server(endpoint, env, log, process)
            time.sleep(0.05)
        code = process.poll()
        _stop(process)
        reason = (
            f"exited with status {code}"
            if code is not None
            else f"did not answer within {_START_TIMEOUT_S:.0f} s"
        )
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise OSError(f"moto server {reason} (log {log}):\n{tail}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One moto S3 server for the test session, stopped at its end."""
    try:
        import moto.server  # noqa: F401  (the server's own dependencies come with it)
    except ImportError as exc:
        pytest.skip(f"needs moto[server] for a local S3 endpoint ({exc}); run `make setup`")
    try:
        server = start_s3_server(tmp_path_factory.mktemp("s3-server") / "moto.log")
    except OSError as exc:
        pytest.skip(f"cannot start a local S3 server: {exc}")
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture
def s3_uri(s3_server: S3Server, monkeypatch) -> str:
    """`s3://<a fresh bucket>` on the session's server, its `AWS_*` variables set for the test."""
    for key in _OVERRIDING:
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server.uri(s3_server.create_bucket())
