"""Helpers for tests that start real servers in their own processes."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx
import pytest

__all__ = ["free_port", "wait_ready"]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, server: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the model server at `base` answers /readyz with 200; fail the test, with the
    server's stderr, when it exits or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"server exited: {server.stderr.read()[-3000:]}"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server not ready within {timeout} s")
