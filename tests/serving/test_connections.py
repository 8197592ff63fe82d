"""Slow and idle clients against a real server (`python -m pipeline serve` on loopback, an empty
model repository: /healthz answers without a model): the header and body timeouts answer 408
and close, a connection that sends nothing and an idle keep-alive connection are closed, and
connections beyond `serving.max_connections` get 503 (beyond twice that, closed at once)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from peppercorn.config import Config, ServingConfig
from serving.connections import uvicorn_options
from serving.settings import Settings
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
GET = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
SLACK_S = 5.0  # the most a loaded 2-core machine may add to a timeout; passing tests take less


def _start_server(tmp: Path, **serving) -> tuple[subprocess.Popen, int]:
    (tmp / "models").mkdir()
    lines = "".join(f"  {key}: {value}\n" for key, value in serving.items())
    config = tmp / "serve.yaml"
    config.write_text(f"paths:\n  model_repository: {tmp / 'models'}\nserving:\n{lines}")
    port = free_port()
    command = [sys.executable, "-m", "pipeline", "serve", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited: {proc.stdout.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("server not listening within 60 s")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    output = proc.communicate(timeout=20)[0]
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """Timeouts of half a second; keep-alive 1 s."""
    tmp = tmp_path_factory.mktemp("fast")
    proc, port = _start_server(tmp, header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=1.0)
    yield port
    _stop(proc)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """max_connections 4; idle connections last 1.5 s, time enough to open a few more."""
    tmp = tmp_path_factory.mktemp("small")
    proc, port = _start_server(tmp, header_timeout_s=1.5, keep_alive_s=1.5, max_connections=4)
    yield port
    _stop(proc)


@pytest.fixture
def connect():
    """Opens a TCP connection to a port on loopback; all are closed after the test."""
    opened: list[socket.socket] = []

    def open_connection(port: int) -> socket.socket:
        opened.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        return opened[-1]

    yield open_connection
    for sock in opened:
        sock.close()


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open
    after `timeout` seconds."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {timeout} s (received {data!r})")
    return data


def _trickle(sock: socket.socket, data: bytes, interval: float, give_up_after: float) -> int:
    """Send `data` a byte every `interval` seconds until the server answers or closes (or
    `give_up_after` seconds pass); returns how many bytes were sent."""
    start = time.monotonic()
    for sent in range(len(data)):
        if time.monotonic() - start > give_up_after:
            return sent
        try:
            sock.send(data[sent : sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            return sent
        if select.select([sock], [], [], interval)[0]:  # the server answered or closed
            return sent + 1
    return len(data)


def _response(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), raw
    return int(head.split()[1]), json.loads(body) if body else {}


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, leaving the connection open."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"closed mid-response: {data!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail(f"closed mid-body: {data!r}")
    return head + b"\r\n\r\n" + body


def test_settings_defaults_env_and_uvicorn_options(monkeypatch):
    for name in ("HEADER_TIMEOUT_S", "BODY_TIMEOUT_S", "KEEP_ALIVE_S", "MAX_CONNECTIONS"):
        monkeypatch.delenv(f"PEPPERCORN_{name}", raising=False)
    s = Settings.from_config(Config())
    defaults = (s.header_timeout_s, s.body_timeout_s, s.keep_alive_s, s.max_connections)
    assert defaults == (10.0, 30.0, 5.0, 1000)
    cfg = Config(serving=ServingConfig(header_timeout_s=2, max_connections=7))
    monkeypatch.setenv("PEPPERCORN_MAX_CONNECTIONS", "9")
    s = Settings.from_config(cfg)
    assert (s.header_timeout_s, s.max_connections) == (2.0, 9)
    options = uvicorn_options(s)
    assert options["timeout_keep_alive"] == 5.0 and options["limit_concurrency"] == 10
    assert options["http"].header_timeout_s == 2.0 and options["http"].max_connections == 9
    with pytest.raises(ValueError):
        ServingConfig(body_timeout_s=0)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(fast, connect):
    sock = connect(fast)
    start = time.monotonic()
    # Nothing of a request arrived, so no 408: the connection is just closed.
    assert _read_until_closed(sock, 0.5 + SLACK_S) == b""
    assert time.monotonic() - start >= 0.4


def test_a_request_line_trickled_a_byte_at_a_time_is_cut_with_408(fast, connect):
    sock = connect(fast)
    sent = _trickle(sock, GET, interval=0.2, give_up_after=0.5 + SLACK_S)
    assert sent < len(GET), "the whole request was sent: never cut"
    status, body = _response(_read_until_closed(sock, SLACK_S))
    assert status == 408
    assert body == {"error": "header timeout: request line and headers not received within 0.5 s"}


def test_a_body_trickled_after_the_headers_is_cut_with_408(fast, connect):
    sock = connect(fast)
    headers = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n"
    sock.sendall(headers)
    sent = _trickle(sock, b"x" * 100, interval=0.2, give_up_after=0.5 + SLACK_S)
    assert sent < 100, "the whole body was sent: never cut"
    status, body = _response(_read_until_closed(sock, SLACK_S))
    assert status == 408
    assert body == {"error": "body timeout: request body not received within 0.5 s"}


def test_prompt_requests_are_answered_and_an_idle_keep_alive_connection_is_closed(fast, connect):
    assert httpx.get(f"http://127.0.0.1:{fast}/healthz", timeout=10).status_code == 200
    # A body sent at once is read and answered (by the app: there is no model to score with).
    r = httpx.post(f"http://127.0.0.1:{fast}/predict", json={"user_id": "u", "item_ids": [1]})
    assert r.status_code in (404, 503) and "timeout" not in r.json()["error"], r.text
    sock = connect(fast)
    sock.sendall(GET)
    assert _response(_read_response(sock))[0] == 200
    # Idle for longer than the header timeout, within keep-alive: the header clock starts at
    # the next request's first byte, not at the previous response.
    time.sleep(0.7)
    sock.sendall(GET)
    assert _response(_read_response(sock))[0] == 200
    # Keep-alive expired (no 408); within 4 s, which uvicorn's default of 5 s would not be.
    assert _read_until_closed(sock, 4.0) == b""


def test_requests_beyond_max_connections_get_503_until_connections_close(small, connect):
    idle = [connect(small) for _ in range(4)]
    sock = connect(small)
    sock.sendall(GET)
    status, body = _response(_read_until_closed(sock, SLACK_S))
    assert status == 503 and "overloaded" in body["error"]
    for conn in idle:  # they send nothing: the header timeout closes them
        assert _read_until_closed(conn, 1.5 + SLACK_S) == b""
    assert httpx.get(f"http://127.0.0.1:{small}/healthz", timeout=10).status_code == 200


def test_connections_beyond_twice_max_connections_are_closed_unread(small, connect):
    idle = [connect(small) for _ in range(8)]
    sock = connect(small)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(GET)  # it may be closed already
    # No answer at all (a 503 or 408 would mean it was read): closed as it was accepted.
    assert _read_until_closed(sock, SLACK_S) == b""
    for conn in idle:
        conn.close()
    deadline = time.monotonic() + SLACK_S
    while (code := httpx.get(f"http://127.0.0.1:{small}/healthz", timeout=10).status_code) != 200:
        assert time.monotonic() < deadline, code  # the closes reach the server in a moment
        time.sleep(0.1)
