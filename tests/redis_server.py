"""A real Redis for the tests: Debian's `redis-server`, as a separate process.

Started with no RDB snapshots and an append-only file in its own temporary folder, bound to
loopback on a free port; a test can stop, kill, pause or restart it (the data comes back from
the append-only file on restart).

Fixture (import it into a test module: `from tests.redis_server import redis_server  # noqa:
F401`): `redis_server` (module scope), a running `RedisServer`. Tests skip, naming the
package, where `redis-server` is not installed (the CI script installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import free_port

__all__ = ["RedisServer", "redis_server", "require_redis_server"]

_START_TIMEOUT_S = 10.0
_MISSING = "redis-server not installed: apt-get install redis-server (the CI script installs it)"


def require_redis_server() -> str:
    """The `redis-server` executable, or a skip naming the package."""
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip(_MISSING)
    return path


def _pong(port: int) -> bool:
    """Whether a raw PING on the port answers +PONG (no client library: the helper tests it)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One `redis-server` process, its folder and port; `url` for clients."""

    def __init__(self, directory: Path, executable: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.executable = executable or require_redis_server()
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 3) -> RedisServer:
        """Start the server (on its previous port when restarting) and wait for PING."""
        for _ in range(attempts):  # a port taken between choosing and binding it: try another
            self.port = self.port or free_port()
            log = (self.directory / "redis.log").open("ab")
            # `--save ""`: no RDB snapshots; the append-only file alone holds the data.
            args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
            args += ["--save", "", "--appendonly", "yes", "--daemonize", "no"]
            with log:
                self.process = subprocess.Popen(
                    [self.executable, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + _START_TIMEOUT_S
            while time.monotonic() < deadline and self.process.poll() is None:
                if _pong(self.port):
                    return self
                time.sleep(0.02)
            self.stop()
            self.port = 0
        tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        raise OSError(f"redis-server did not start in {self.directory}:\n{tail}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: Redis flushes its append-only file first)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections open, no answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> RedisServer:
        """Stop gracefully and start again on the same port and folder."""
        self.stop()
        return self.start()

    def _end(self, sig: int) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """A running redis-server for the test module, stopped at its end."""
    server = RedisServer(tmp_path_factory.mktemp("redis-server"))
    try:
        server.start()
    except OSError as exc:
        pytest.skip(f"cannot start redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()
