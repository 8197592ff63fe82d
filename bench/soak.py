"""`make bench-soak`: a soak test of the model server, with hot swaps and junk, as a benchmark.

What runs: the real server (`python -m pipeline serve`, one uvicorn worker, repository polled
every second) on a NeuMF-like model the bench builds in a temporary model repository
(bench/serve_model.py: 5,000 users, 10,000 items, GMF 8 + MLP 64-32-16-8, random weights).
A separate load process offers `--rate` requests/s (default 200) for `--seconds` (default
600) on a fixed arrival schedule (open loop: request i is due at i / rate whatever the server
does, and its latency counts from then, so a stalled server cannot hide its queue).  It uses
asyncio with a pool of keep-alive connections; a connection the server drops without a
whole answer is counted, never retried.  The mix, drawn from a seeded generator (`--seed`),
is the same every run:

- valid (must all answer 200 with a well-formed body): raw-id `POST /predict` (10-100
  items), `POST /recommend` (k 10-50, some with candidates), TF Serving
  `POST /v1/models/soak:predict` with 1 instance and with 1,000 instances; 5 % of the users
  are unknown (a 200 too: the unknown-user embedding, or the popular fallback);
- junk, 10 % of the traffic (its right answer is a 4xx, never a 5xx or a dropped
  connection): malformed JSON, wrong types, unknown ids, oversized k / item lists / bodies,
  non-JSON bodies with non-JSON content types, unknown models / versions / labels /
  signatures, wrong methods and paths.

Meanwhile this process publishes a new version through `ModelRepository.publish` every
`--swap-every` seconds (default 60; the first version's weights times 1 + 2 % noise) and,
half-way between two swaps, corrupt versions that the server must refuse while the previous
version keeps serving (`--corrupt`): one whose variables.npz bytes were flipped after its
manifest was computed (a checksum mismatch), and one whose weights hold NaN in 50 rows of an
item embedding (a partly diverged training run: valid checksums, and the warm-up's few
random requests rarely touch those rows).  GET /v1/models/soak is polled every 0.25 s to
see each version go AVAILABLE or END (with its error), and every answer from /predict and
/recommend says which version served it.

Measured: requests and errors by status (valid and junk apart), p50/p99/max latency per
route, the server's RSS (/proc/<pid>/status VmRSS) and open descriptors (/proc/<pid>/fd)
at the start -- after `WARMUP_S` s of traffic, so the allocator's and the caches' first
growth is not counted -- and at the end, and idle before and after; the swaps seen.  Targets:
no error on a valid request, RSS growth under 5 %, no descriptor growth.  Writes
soak.json and soak.md to `--results` (default bench/results).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.serve import free_port
from bench.serve_load import Conn, raw_requests

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODEL = "soak"
N_USERS, N_ITEMS = 5_000, 10_000
# Share of each valid route; the junk kinds share JUNK_SHARE equally.
VALID_MIX = {"predict": 0.35, "recommend": 0.20, "tf_predict_1": 0.25, "tf_predict_1000": 0.10}
JUNK_SHARE = 0.10
WARMUP_S = 20.0
POLL_INTERVAL_S = 1.0  # the server's repository poll
STATUS_EVERY_S, SAMPLE_EVERY_S = 0.25, 5.0
NAN_ROWS, NOISE = 50, 0.02
TARGET_RSS_GROWTH = 0.05
REQUEST_TIMEOUT_S = 30.0
# Connections idle longer than this are closed by the client, never reused: uvicorn closes
# keep-alive connections idle for 5 s, and a request sent just as it does would read as a
# dropped connection that is no fault of the server's.
REUSE_IDLE_S = 2.0
MAX_CONNECTIONS = 256
# Pseudo status codes for requests without an HTTP answer.
DROPPED, TIMEOUT, CONNECT_FAILED = 0, -1, -2
NO_ANSWER = {DROPPED: "dropped", TIMEOUT: "timeout", CONNECT_FAILED: "connect_failed"}


# ---- the request mix -----------------------------------------------------------------
def _raw(method: str, host: str, path: str, body: bytes = b"", ctype: str | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if ctype is not None:
        head += f"Content-Type: {ctype}\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _json(value) -> bytes:
    return json.dumps(value).encode()


def request_pools(host: str, seed: int) -> dict[str, list[tuple[bytes, int]]]:
    """Kind -> distinct requests of that kind, each (raw HTTP request, expected answer
    length: items scored, k, or instances; 0 for junk).  Kinds starting "junk:" expect a 4xx."""
    rng = np.random.default_rng(seed)
    base = f"http://{host}"
    tf = f"/v1/models/{MODEL}:predict"

    def user() -> int:  # 5 % new users, whom the model does not know: still a 200
        return int(rng.integers(1, N_USERS + 1)) if rng.random() >= 0.05 else N_USERS + 1000

    def items(n: int) -> list[int]:
        return [int(i) for i in rng.choice(np.arange(1, N_ITEMS + 1), n, replace=False)]

    def instances(n: int) -> list[dict]:
        us, its = rng.integers(0, N_USERS + 1, n), rng.integers(0, N_ITEMS + 1, n)
        return [{"user_idx": int(u), "item_idx": int(i)} for u, i in zip(us, its, strict=True)]

    def valid(path: str, bodies: list[tuple[dict, int]]) -> list[tuple[bytes, int]]:
        raws = raw_requests(base + path, [_json(b) for b, _ in bodies])
        return list(zip(raws, [n for _, n in bodies], strict=True))

    predict = []
    for _ in range(200):
        n = int(rng.integers(10, 101))
        predict.append(({"user_id": user(), "item_ids": items(n)}, n))
    recommend = []
    for _ in range(200):
        k = int(rng.choice([10, 10, 10, 20, 50]))
        body = {"user_id": user(), "k": k}
        # Candidates for known users only: an unknown user's popular fallback among 200
        # random candidates may hold fewer than k items, and the body check wants k.
        if body["user_id"] <= N_USERS and rng.random() < 0.2:
            body["candidates"] = items(200)
        recommend.append((body, k))
    pools = {
        "predict": valid("/predict", predict),
        "recommend": valid("/recommend", recommend),
        "tf_predict_1": valid(tf, [({"instances": instances(1)}, 1) for _ in range(200)]),
        "tf_predict_1000": valid(tf, [({"instances": instances(1000)}, 1000) for _ in range(40)]),
    }

    def post(path: str, body, ctype: str = "application/json") -> bytes:
        return _raw("POST", host, path, body if isinstance(body, bytes) else _json(body), ctype)

    u = 7  # a known user: only the junk part of each request is wrong
    junk = {
        "malformed_json": [
            post("/predict", b'{"user_id": 12, "item_ids": [1, 2'),
            post("/recommend", b"{user_id: 3, k: 10}"),
            post(tf, b'{"instances": [{"user_idx": 1, "item_idx": 2},]}'),
            post("/recommend", b""),
            post("/predict", b"\xff\xfe\x00garbage"),
        ],
        "wrong_types": [
            post("/recommend", {"user_id": u, "k": "10"}),
            post("/recommend", {"user_id": u, "k": 2.5}),
            post("/predict", {"user_id": u, "item_ids": "1,2,3"}),
            post("/predict", {"user_id": [u], "item_ids": [1]}),
            post("/predict", {"user_id": u, "item_ids": [1, None]}),
            post("/predict", {"user_id": u, "item_ids": [1], "bogus": True}),
            post("/recommend", [1, 2, 3]),
            post(tf, {"instances": [{"user_idx": "a", "item_idx": 1}]}),
            post(tf, {"instances": [{"user_idx": 1.5, "item_idx": 2}]}),
            post(tf, {"instances": "everything"}),
            post(tf, {"instances": [[1, 2]]}),
            post(
                tf,
                {
                    "instances": [{"user_idx": 1, "item_idx": 2}],
                    "inputs": {"user_idx": [1], "item_idx": [2]},
                },
            ),
        ],
        "unknown_ids": [
            post("/predict", {"user_id": u, "item_ids": [N_ITEMS + 17, 3]}),
            post("/predict", {"user_id": u, "item_ids": ["no-such-item"]}),
            post("/recommend", {"user_id": u, "candidates": [N_ITEMS + 5, 4]}),
            post(tf, {"instances": [{"user_idx": N_USERS + 10, "item_idx": 1}]}),
            post(tf, {"instances": [{"user_idx": -1, "item_idx": 1}]}),
            post(tf, {"instances": [{"user_idx": 1, "item_idx": 2**40}]}),
        ],
        "oversized": [
            post("/recommend", {"user_id": u, "k": 1_000_000}),
            post("/recommend", {"user_id": u, "k": 0}),
            post("/recommend", {"user_id": u, "k": 10**30}),
            post("/predict", {"user_id": u, "item_ids": list(range(1, 10_002))}),  # > 10,000
            post("/predict", {"user_id": u, "item_ids": [1] * 400_000}),  # body over 1 MiB
        ],
        "wrong_content_type": [
            post("/recommend", b"user_id=3&k=10", "application/x-www-form-urlencoded"),
            post("/predict", b"user 3: items 1 2 3", "text/plain"),
            post(tf, b"<instances><i user_idx='1' item_idx='2'/></instances>", "application/xml"),
            post(
                "/recommend",
                b'--x\r\nContent-Disposition: form-data; name="user_id"\r\n\r\n3\r\n--x--\r\n',
                "multipart/form-data; boundary=x",
            ),
        ],
        "unknown_model": [
            post("/v1/models/nosuch:predict", {"instances": [{"user_idx": 1, "item_idx": 2}]}),
            post("/recommend", {"model": "nosuch", "user_id": u}),
            post("/predict", {"model": "nosuch", "user_id": u, "item_ids": [1]}),
            post(f"/v1/models/{MODEL}/versions/999999:predict", {"instances": [[1, 2]]}),
            post(f"/v1/models/{MODEL}/labels/canary:predict", {"instances": [[1, 2]]}),
            post(tf, {"signature_name": "nope", "instances": [{"user_idx": 1, "item_idx": 2}]}),
            _raw("GET", host, "/v1/models/nosuch"),
        ],
        "wrong_route": [
            _raw("GET", host, "/predict"),
            post("/v2/recommend", {"user_id": u}),
            _raw("PUT", host, "/recommend", _json({"user_id": u}), "application/json"),
        ],
    }
    for kind, raws in junk.items():
        pools[f"junk:{kind}"] = [(r, 0) for r in raws]
    return pools


def mix_weights(kinds: list[str]) -> np.ndarray:
    """Probability of each kind (VALID_MIX, then JUNK_SHARE split among the junk kinds)."""
    n_junk = sum(k.startswith("junk:") for k in kinds)
    w = [JUNK_SHARE / n_junk if k.startswith("junk:") else VALID_MIX[k] for k in kinds]
    return np.asarray(w) / sum(w)


# ---- the load process ----------------------------------------------------------------
class _Conn(Conn):
    """A keep-alive connection that also returns the body and whether the server closes."""

    async def exchange(self, raw: bytes) -> tuple[int, bytes, bool]:
        """Send `raw`; (status, body, the server closes the connection after it)."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = None, False, head.startswith(b"HTTP/1.0")
        for line in head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            key, value = key.strip().lower(), value.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value
            elif key == b"connection":
                close = close or b"close" in value
        if chunked:
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append((await self.reader.readexactly(size + 2))[:-2])
            await self.reader.readuntil(b"\r\n")
            body = b"".join(parts)
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            body, close = await self.reader.read(), True
        return status, body, close


def _body_ok(kind: str, body: bytes, expected: int) -> tuple[bool, int]:
    """Whether a 200's body is a whole answer of the right length, and the version it names
    (-1 where the route does not say)."""
    try:
        obj = json.loads(body)
        if kind in ("predict", "recommend"):
            values = obj["scores"] if kind == "predict" else [x["score"] for x in obj["items"]]
            version = int(obj["version"])
        else:
            values, version = obj["predictions"], -1
        in_range = all(0.0 <= v <= 1.0 for v in values)
        return len(values) == expected and in_range, version
    except (ValueError, KeyError, TypeError):
        return False, -1


async def _run_load(
    host: str, port: int, rate: float, seconds: float, seed: int, started
) -> tuple[dict[str, np.ndarray], dict]:
    pools = request_pools(f"{host}:{port}", seed)
    kinds = list(pools)
    n = max(1, int(rate * seconds))
    rng = np.random.default_rng(seed + 1)
    kind_of = rng.choice(len(kinds), n, p=mix_weights(kinds)).astype(np.int16)
    pick = rng.integers(0, 1 << 30, n)  # which request of its kind's pool
    status = np.full(n, np.iinfo(np.int16).min, np.int16)  # never sent (left over at the end)
    latency = np.full(n, np.nan)
    lag = np.full(n, np.nan)
    version = np.full(n, -1, np.int32)
    bad_body = np.zeros(n, bool)
    idle: collections.deque[tuple[_Conn, float]] = collections.deque()
    stats = collections.Counter()
    inflight = [0, 0]  # now, max
    limit = asyncio.Semaphore(MAX_CONNECTIONS)
    clock = time.perf_counter  # uvloop's loop clock has millisecond resolution
    start = started()  # blocks until the orchestrator says when request 0 is due

    def take() -> _Conn | None:
        now = clock()
        while idle and now - idle[0][1] > REUSE_IDLE_S:  # oldest first
            idle.popleft()[0].writer.close()
            stats["closed_idle_by_client"] += 1
        return idle.pop()[0] if idle else None

    async def one(i: int) -> None:
        scheduled = start + i / rate
        kind = kinds[kind_of[i]]
        raw, expected = pools[kind][pick[i] % len(pools[kind])]
        async with limit:
            lag[i] = clock() - scheduled
            inflight[0] += 1
            inflight[1] = max(inflight)
            conn = take()
            try:
                if conn is None:
                    try:
                        conn = _Conn(*await asyncio.open_connection(host, port))
                    except OSError:
                        status[i] = CONNECT_FAILED
                        return
                    stats["connections_opened"] += 1
                code, body, close = await asyncio.wait_for(conn.exchange(raw), REQUEST_TIMEOUT_S)
            except asyncio.TimeoutError:
                status[i] = TIMEOUT
                conn.writer.close()
                return
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status[i] = DROPPED  # no whole answer: the connection broke under the request
                conn.writer.close()
                return
            finally:
                inflight[0] -= 1
                latency[i] = clock() - scheduled
            status[i] = code
            if code == 200 and not kind.startswith("junk:"):
                ok, version[i] = _body_ok(kind, body, expected)
                bad_body[i] = not ok
            if close:
                stats["closed_by_server_after_answer"] += 1
                conn.writer.close()
            else:
                idle.append((conn, clock()))

    tasks: set[asyncio.Task] = set()
    for i in range(n):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    elapsed = clock() - start
    while idle:
        idle.pop()[0].writer.close()
    arrays = {
        "kind": kind_of,
        "scheduled": np.arange(n) / rate,
        "status": status,
        "latency": latency,
        "lag": lag,
        "version": version,
        "bad_body": bad_body,
    }
    summary = {"kinds": kinds, "elapsed_s": elapsed, "max_inflight": inflight[1], **stats}
    return arrays, summary


def _load_main(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    def started() -> float:
        # The pools are built: say so, then wait for request 0's due time (epoch seconds).
        print("ready", flush=True)
        due = float(sys.stdin.readline())
        return time.perf_counter() + (due - time.time())

    arrays, summary = asyncio.run(
        _run_load(args.host, args.port, args.rate, args.seconds, args.seed, started)
    )
    np.savez(args.out, **arrays)
    print(json.dumps(summary), flush=True)


# ---- the server and its resources ----------------------------------------------------
def _proc_sample(pid: int) -> dict:
    """RSS, peak RSS, threads and open descriptors (sockets and the rest) of process `pid`."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    sockets = other = 0
    for fd in os.scandir(f"/proc/{pid}/fd"):
        try:
            is_socket = os.readlink(fd.path).startswith("socket:")
        except OSError:  # closed while listed
            continue
        sockets += is_socket
        other += not is_socket
    return {
        "rss_kb": fields.get("VmRSS"),
        "peak_rss_kb": fields.get("VmHWM"),
        "threads": fields.get("Threads"),
        "fds": sockets + other,
        "socket_fds": sockets,
        "other_fds": other,
    }


def _start_server(config: Path, port: int, log: Path) -> subprocess.Popen:
    # The server's output goes to a file, not a pipe nobody reads: a long run's log lines
    # (tracebacks of 5xx) would fill a pipe and block the server.
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--config", str(config)]
            + ["--port", str(port), "--log-level", "info"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}): {log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the server was not ready within 120 s")


class _StatusPoller(threading.Thread):
    """Polls GET /v1/models/<MODEL> and keeps each version's state changes with their times."""

    def __init__(self, port: int, t0: float):
        super().__init__(name="status-poller", daemon=True)
        self.port, self.t0 = port, t0
        self.changes: list[dict] = []  # {t, version, state, error_code, error_message}
        self.errors = collections.Counter()
        self.polls = 0
        self.stop = threading.Event()

    def run(self) -> None:
        last: dict[str, tuple] = {}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.wait(STATUS_EVERY_S):
            try:
                conn.request("GET", f"/v1/models/{MODEL}")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    self.errors[str(response.status)] += 1
                    continue
                entries = json.loads(body)["model_version_status"]
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                self.errors[type(exc).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                continue
            self.polls += 1
            now = {}
            for e in entries:
                status = e.get("status", {})
                now[e["version"]] = (
                    e["state"],
                    status.get("error_code"),
                    status.get("error_message"),
                )
            for v in sorted(set(now) | set(last), key=int):
                if now.get(v) != last.get(v):
                    state, code, message = now.get(v, ("GONE", None, None))
                    self.changes.append(
                        {
                            "t": round(time.time() - self.t0, 2),
                            "version": int(v),
                            "state": state,
                            "error_code": code,
                            "error_message": message,
                        }
                    )
            last = now
        conn.close()


# ---- the versions ----------------------------------------------------------------------
class _Publisher:
    """Publishes versions of MODEL: the first one's weights with a little noise, or corrupt."""

    def __init__(self, repo: Path):
        from peppercorn.model_repository import ModelRepository

        self.repo = ModelRepository(str(repo))
        self.saved = self.repo.version(MODEL).open().saved
        self.base = {v: self.saved.session.get_value(v) for v in self.saved.graph.variables}
        # Saved signatures name their nodes; serialize takes names with dtype and shape.
        self.signatures = {
            name: {
                "inputs": {k: s["name"] for k, s in sig["inputs"].items()},
                "outputs": {
                    k: {"node": s["name"], "dtype": s["dtype"], "shape": s["shape"]}
                    for k, s in sig["outputs"].items()
                },
            }
            for name, sig in self.saved.signatures.items()
        }

    def publish(self, seed: int, kind: str = "good") -> int:
        """Publish a version ("good", "flipped" bytes or "nan" weights); its number."""
        from engine.saved import serialize

        rng = np.random.default_rng(1000 + seed)
        values = {
            v: (x * (1 + NOISE * rng.standard_normal(x.shape))).astype(x.dtype)
            for v, x in self.base.items()
        }
        if kind == "nan":
            # The GMF item embedding (the narrowest table with a row per item).
            tables = [v for v, x in values.items() if x.ndim == 2 and x.shape[0] == N_ITEMS + 1]
            table = min(tables, key=lambda v: values[v].shape[1])
            values[table][rng.choice(np.arange(1, N_ITEMS + 1), NAN_ROWS, replace=False)] = np.nan
        for v, x in values.items():
            self.saved.session.set_value(v, x)
        files = serialize(self.saved.session, self.signatures, assets=self.saved.assets)
        if kind == "flipped":
            # After the manifest listed its checksum: what a bad disk or a torn copy leaves.
            data = bytearray(files["variables.npz"])
            middle = len(data) // 2
            data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
            files["variables.npz"] = bytes(data)
        return self.repo.publish(MODEL, files).version


def swap_plan(seconds: float, every: float, corrupt: list[str]) -> list[tuple[float, str]]:
    """(time, kind) of every publication: a good version every `every` s while it can still
    load before the end, and each corrupt kind half-way between two good ones, spread out."""
    margin = min(5.0, every / 2)
    goods = [
        k * every for k in range(1, int(seconds // every) + 1) if k * every <= seconds - margin
    ]
    plan = [(t, "good") for t in goods]
    n, m = len(goods), len(corrupt)
    slots = sorted({round(n * j / (m + 1)) for j in range(1, m + 1)} & set(range(1, n)))
    plan += [((k + 0.5) * every, kind) for k, kind in zip(slots, corrupt, strict=False)]
    return sorted(plan)


# ---- the figures -----------------------------------------------------------------------
def _pct(values: np.ndarray) -> dict:
    v = values[~np.isnan(values)] * 1e3
    if not v.size:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    p50, p99 = np.percentile(v, [50, 99])
    return {
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(v.max()), 2),
    }


def _status_counts(codes: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(codes, return_counts=True)
    never = np.iinfo(np.int16).min
    return {
        ("never_sent" if v == never else NO_ANSWER.get(int(v), str(int(v)))): int(c)
        for v, c in zip(values, counts, strict=True)
    }


def _versions_timeline(changes: list[dict]) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for c in changes:
        v = out.setdefault(c["version"], {"states": []})
        v["states"].append([c["t"], c["state"]])
        if c["state"] == "END" and c["error_code"] not in (None, "OK"):
            v["error"] = f"{c['error_code']}: {c['error_message']}"
    return out


def _server_log(log: Path) -> dict:
    """5xx tracebacks in the server's log (distinct last lines, counted) and refusals."""
    lines = log.read_text(errors="replace").splitlines()
    exceptions: collections.Counter = collections.Counter()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            if j < len(lines):
                exceptions[lines[j][:300]] += 1
    unhandled = sum("unhandled error" in line for line in lines)
    refused = [line[:400] for line in lines if " refused: " in line]
    return {
        "unhandled_errors_logged": unhandled,
        "tracebacks": dict(exceptions.most_common(10)),
        "refusals": refused,
    }


def analyse(arrays: dict, load: dict, plan_done: list[dict], poller: _StatusPoller) -> dict:
    """Every figure of the report from the load's per-request arrays and the swap log."""
    kinds = load["kinds"]
    kind_name = np.asarray(kinds)[arrays["kind"]]
    status, latency = arrays["status"], arrays["latency"]
    junk = np.char.startswith(kind_name.astype(str), "junk:")
    valid = ~junk
    bad = arrays["bad_body"]
    valid_fail = valid & ((status != 200) | bad)
    junk_fail = junk & ~((status >= 400) & (status < 500))
    routes = {}
    for kind in kinds:
        sel = kind_name == kind
        entry = {
            "requests": int(sel.sum()),
            "statuses": _status_counts(status[sel]),
            **_pct(latency[sel & (status > 0)]),
        }
        if not kind.startswith("junk:"):
            entry["bad_bodies"] = int((sel & bad).sum())
        routes[kind] = entry
    valid_errors = _status_counts(status[valid_fail & ~((status == 200) & bad)])
    if (valid & bad & (status == 200)).any():
        valid_errors["200_with_bad_body"] = int((valid & bad & (status == 200)).sum())
    served = arrays["version"][arrays["version"] >= 0]
    by_version = {
        int(v): int(c) for v, c in zip(*np.unique(served, return_counts=True), strict=True)
    }
    timeline = _versions_timeline(poller.changes)
    swaps = []
    for i, event in enumerate(plan_done):
        v, t = event["version"], event["t"]
        states = timeline.get(v, {}).get("states", [])
        first = {s: ts for ts, s in reversed(states)}
        mask = arrays["version"] == v
        until = plan_done[i + 1]["t"] if i + 1 < len(plan_done) else float("inf")
        window = valid & (arrays["scheduled"] >= t) & (arrays["scheduled"] < until)
        swaps.append(
            {
                **event,
                "available_after_s": round(first["AVAILABLE"] - t, 2)
                if "AVAILABLE" in first
                else None,
                "end_after_s": round(first["END"] - t, 2) if "END" in first else None,
                "error": timeline.get(v, {}).get("error"),
                "answers_from_it": int(mask.sum()),
                "first_answer_after_s": (
                    round(float(arrays["scheduled"][mask].min()) - t, 2) if mask.any() else None
                ),
                "valid_until_next": int(window.sum()),
                "valid_errors_until_next": int((window & valid_fail).sum()),
            }
        )
    for s in swaps:
        if s["kind"] == "good":
            s["ok"] = s["available_after_s"] is not None and s["answers_from_it"] > 0
        else:  # refused: END with an error, never AVAILABLE, never answered, nothing failed
            s["ok"] = (
                s["error"] is not None
                and s["available_after_s"] is None
                and s["answers_from_it"] == 0
                and s["valid_errors_until_next"] == 0
            )
    elapsed = load["elapsed_s"]
    answered = status > 0
    return {
        "requests": int(status.size),
        "valid_requests": int(valid.sum()),
        "junk_requests": int(junk.sum()),
        "achieved_rps": round(float(answered.sum()) / elapsed, 1) if elapsed else None,
        "valid_errors": valid_errors,
        "valid_error_count": int(valid_fail.sum()),
        "junk_not_4xx": _status_counts(status[junk_fail]),
        "junk_not_4xx_count": int(junk_fail.sum()),
        "junk_statuses": _status_counts(status[junk]),
        "latency_all_valid": _pct(latency[valid & answered]),
        "routes": routes,
        "answers_by_version": by_version,
        "swaps": swaps,
        "versions_timeline": {str(k): v for k, v in sorted(timeline.items())},
        "generator": {
            "send_lag": _pct(arrays["lag"]),
            "max_inflight": load["max_inflight"],
            "connections_opened": load.get("connections_opened", 0),
            "closed_by_server_after_answer": load.get("closed_by_server_after_answer", 0),
            "closed_idle_by_client": load.get("closed_idle_by_client", 0),
            "elapsed_s": round(elapsed, 1),
        },
        "status_poller": {"polls": poller.polls, "errors": dict(poller.errors)},
    }


# ---- the run ---------------------------------------------------------------------------
def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "serving", "peppercorn", "engine", "pipeline")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " + local changes" if dirty else ""
    )


def run(args: argparse.Namespace) -> dict:
    """Build the model, start the server and the load, publish on schedule; the results."""
    from bench.serve_model import build_ml100k_shaped

    corrupt = {"both": ["flipped", "nan"], "none": []}.get(args.corrupt, [args.corrupt])
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    repo = tmp / "models"
    build_ml100k_shaped(repo, name=MODEL, n_users=N_USERS, n_items=N_ITEMS)
    publisher = _Publisher(repo)
    config = tmp / "serve.yaml"
    config.write_text(
        f"paths:\n  model_repository: {repo}\nserving:\n"
        f"  poll_interval_s: {POLL_INTERVAL_S}\n  default_model: {MODEL}\n"
    )
    port = free_port()
    log = tmp / "server.log"
    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "seconds": args.seconds,
            "rate": args.rate,
            "swap_every_s": args.swap_every,
            "seed": args.seed,
            "corrupt": corrupt,
            "model": MODEL,
            "users": N_USERS,
            "items": N_ITEMS,
            "mix": {**VALID_MIX, "junk": JUNK_SHARE},
            "warmup_s": round(min(WARMUP_S, args.seconds / 3), 1),
            "server_poll_interval_s": POLL_INTERVAL_S,
        },
    }
    plan = swap_plan(args.seconds, args.swap_every, corrupt)
    # A short run may have no room for every corrupt kind: the report names those dropped in.
    result["settings"]["corrupt_dropped_in"] = [kind for _, kind in plan if kind != "good"]
    server = _start_server(config, port, log)
    pid = server.pid
    load = None
    try:
        time.sleep(1.0)
        idle_before = _proc_sample(pid)
        options = {"--port": port, "--rate": args.rate, "--seconds": args.seconds,
                   "--seed": args.seed, "--out": tmp / "load.npz"}  # fmt: skip
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.soak", "load", "--host", "127.0.0.1"]
            + [str(x) for item in options.items() for x in item],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if load.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the load process did not start (exit {load.wait()})")
        t0 = time.time() + 0.5
        load.stdin.write(f"{t0!r}\n")
        load.stdin.flush()
        poller = _StatusPoller(port, t0)
        poller.start()
        events = [(t, "publish", kind) for t, kind in plan]
        warmup = result["settings"]["warmup_s"]
        marked = [(warmup, "start", None), (args.seconds - 1.0, "end", None)]
        events += marked + [
            (float(t), "sample", None)
            for t in np.arange(0, args.seconds, SAMPLE_EVERY_S)
            if all(abs(t - m) >= 1.0 for m, _, _ in marked)  # start and end are samples too
        ]
        samples, published, marks, exited = [], [], {}, None
        for t, what, kind in sorted(events, key=lambda e: e[0]):
            time.sleep(max(0.0, t0 + t - time.time()))
            if server.poll() is not None:
                exited = {"t": round(time.time() - t0, 1), "returncode": server.returncode}
                break
            if what == "publish":
                t_pub = round(time.time() - t0, 2)
                version = publisher.publish(len(published) + 1, kind)
                published.append({"t": t_pub, "version": version, "kind": kind})
                print(f"[{t_pub:7.1f} s] published version {version} ({kind})", file=sys.stderr)
            else:
                sample = {"t": round(time.time() - t0, 1), **_proc_sample(pid)}
                samples.append(sample)
                if what in ("start", "end"):
                    marks[what] = sample
        out, _ = load.communicate(timeout=args.seconds + REQUEST_TIMEOUT_S + 60)
        poller.stop.set()
        poller.join(timeout=15)
        time.sleep(2.0)  # the server notices the load's connections closing
        idle_after = _proc_sample(pid) if server.poll() is None else None
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    load_summary = json.loads(out.strip().splitlines()[-1])
    with np.load(tmp / "load.npz") as data:
        arrays = {k: data[k] for k in data.files}
    result.update(analyse(arrays, load_summary, published, poller))
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["server_exited_early"] = exited
    result["server_log"] = {"path": str(log), **_server_log(log)}
    shutil.rmtree(repo, ignore_errors=True)  # the versions; the log and the load's arrays stay
    result["resources"] = _resources(marks, idle_before, idle_after, samples, args.seconds)
    result["targets"] = _targets(result)
    return result


def _resources(
    marks: dict, idle_before: dict, idle_after: dict | None, samples: list, seconds: float
) -> dict:
    start, end = marks.get("start"), marks.get("end")
    growth = window_growth = None
    if start and end:
        growth = round((end["rss_kb"] - start["rss_kb"]) / start["rss_kb"], 4)
        # RSS under load moves by several % from sample to sample (in-flight requests, two
        # versions loaded during a swap): the medians of the first and last minute after the
        # warm-up (a third of it in a short run) say whether the point figures are noise.
        span = min(60.0, (seconds - start["t"]) / 3)
        first = [x["rss_kb"] for x in samples if start["t"] <= x["t"] < start["t"] + span]
        last = [x["rss_kb"] for x in samples if x["t"] > end["t"] - span]
        if first and last:
            window_growth = round(float(np.median(last) / np.median(first) - 1), 4)
    return {
        "rss_growth_window_medians": window_growth,
        "start": start,
        "end": end,
        "idle_before": idle_before,
        "idle_after": idle_after,
        "rss_growth": growth,
        "max_rss_kb": max((s["rss_kb"] for s in samples), default=None),
        "samples": samples,
    }


def _targets(r: dict) -> dict:
    res = r["resources"]
    start, end, before, after = res["start"], res["end"], res["idle_before"], res["idle_after"]
    fds_ok = None
    if start and end and after:
        # Sockets come and go with the load's connections: under load only the other
        # descriptors are compared; idle, with no client connected, all of them.
        fds_ok = end["other_fds"] <= start["other_fds"] and after["fds"] <= before["fds"]
    corrupt = [s for s in r["swaps"] if s["kind"] != "good"]
    return {
        "valid_all_200": r["valid_error_count"] == 0 and not r["server_exited_early"],
        "junk_all_4xx": r["junk_not_4xx_count"] == 0,
        "rss_growth_under_5pct": None
        if res["rss_growth"] is None
        else res["rss_growth"] < TARGET_RSS_GROWTH,
        "no_fd_growth": fds_ok,
        "every_good_version_served": all(s["ok"] for s in r["swaps"] if s["kind"] == "good"),
        "every_corrupt_version_refused": all(s["ok"] for s in corrupt) if corrupt else None,
    }


# ---- the report ------------------------------------------------------------------------
def _yes(value) -> str:
    return "n/a" if value is None else ("yes" if value else "**NO**")


def _signed(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:+.1%}"


def _counts(d: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"


def markdown(r: dict) -> str:
    """The report as Markdown."""
    s, m, res, g = r["settings"], r["machine"], r["resources"], r["generator"]
    lines = [
        "# Soak test (`make bench-soak`, `python -m bench.soak`)",
        "",
        f"{s['seconds']:.0f} s of mixed traffic at {s['rate']:.0f} requests/s (open loop, a "
        f"fixed arrival schedule, seed {s['seed']}; latency from each request's due time) from "
        "a separate process (asyncio, a pool of keep-alive connections) against the real server "
        f"(`python -m pipeline serve`, one uvicorn worker, repository polled every "
        f"{s['server_poll_interval_s']:g} s). Model: NeuMF-like (GMF 8 + MLP 64-32-16-8, random "
        f"weights), {s['users']:,} users, {s['items']:,} items. Mix: /predict "
        f"{s['mix']['predict']:.0%} (10-100 items), /recommend {s['mix']['recommend']:.0%} "
        f"(full catalogue or 200 candidates), TF predict 1 instance "
        f"{s['mix']['tf_predict_1']:.0%}, 1,000 instances {s['mix']['tf_predict_1000']:.0%}, "
        f"junk {s['mix']['junk']:.0%}. A new version every {s['swap_every_s']:g} s; corrupt "
        f"versions dropped in (`--corrupt`): {', '.join(s['corrupt_dropped_in']) or 'none'} "
        "(flipped: variables.npz bytes flipped after the manifest was computed; nan: "
        f"{NAN_ROWS} NaN rows in the GMF item embedding, valid checksums).",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}; load average "
        f"(1, 5, 15 min) {m['loadavg_at_start']} at the start, {m['loadavg_at_end']} at the "
        f"end (other work shares the machine); {r['date']}; commit {r['commit']}.",
        "",
        "## Targets",
        "",
        "| target | figure | met |",
        "|---|---|---|",
        f"| every valid request answered 200 with a whole body | {r['valid_error_count']} of "
        f"{r['valid_requests']:,} failed ({_counts(r['valid_errors'])}) | "
        f"{_yes(r['targets']['valid_all_200'])} |",
        f"| every junk request answered 4xx (no 5xx, no dropped connection) | "
        f"{r['junk_not_4xx_count']} of {r['junk_requests']:,} not 4xx "
        f"({_counts(r['junk_not_4xx'])}) | {_yes(r['targets']['junk_all_4xx'])} |",
    ]
    start, end = res["start"], res["end"]
    if start and end:
        lines += [
            f"| server RSS growth < 5 % (start after {s['warmup_s']:g} s of traffic) | "
            f"{start['rss_kb'] / 1024:.1f} MiB at {start['t']:g} s -> {end['rss_kb'] / 1024:.1f} "
            f"MiB at {end['t']:g} s ({res['rss_growth']:+.1%}) | "
            f"{_yes(r['targets']['rss_growth_under_5pct'])} |",
            f"| no descriptor growth | under load: {start['fds']} ({start['other_fds']} not "
            f"sockets) -> {end['fds']} ({end['other_fds']} not sockets); idle: "
            f"{res['idle_before']['fds']} before -> "
            f"{res['idle_after']['fds'] if res['idle_after'] else '?'} after | "
            f"{_yes(r['targets']['no_fd_growth'])} |",
        ]
    lines += [
        f"| every good version served | {sum(x['kind'] == 'good' for x in r['swaps'])} "
        f"published | {_yes(r['targets']['every_good_version_served'])} |",
        f"| every corrupt version refused while the old one served | "
        f"{sum(x['kind'] != 'good' for x in r['swaps'])} published | "
        f"{_yes(r['targets']['every_corrupt_version_refused'])} |",
        "",
        f"Requests: {r['requests']:,} ({r['valid_requests']:,} valid, {r['junk_requests']:,} "
        f"junk); {r['achieved_rps']} answered/s; every valid request: p50 "
        f"{r['latency_all_valid']['p50_ms']} ms, p99 {r['latency_all_valid']['p99_ms']} ms. "
        f"Junk statuses: {_counts(r['junk_statuses'])}.",
        "",
        "## Latency by route",
        "",
        "| route | requests | statuses | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for kind, x in r["routes"].items():
        statuses = _counts(x["statuses"])
        if x.get("bad_bodies"):
            statuses += f", bad bodies: {x['bad_bodies']}"
        lines.append(
            f"| {kind} | {x['requests']:,} | {statuses} | {x['p50_ms']} | "
            f"{x['p99_ms']} | {x['max_ms']} |"
        )
    lines += [
        "",
        "## Versions",
        "",
        "Version 1 is the first export. AVAILABLE / END: seconds from publication to the state "
        f"in GET /v1/models/{MODEL} (polled every {STATUS_EVERY_S:g} s); answers: /predict and "
        "/recommend answers that named the version; valid errors: failed valid requests due "
        "between this publication and the next.",
        "",
        "| published at s | version | kind | AVAILABLE after s | END after s | error | "
        "answers (first after s) | valid requests / errors until next |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["swaps"]:
        error = (x["error"] or "")[:160].replace("|", "/")
        lines.append(
            f"| {x['t']:g} | {x['version']} | {x['kind']} | {x['available_after_s']} | "
            f"{x['end_after_s']} | {error} | {x['answers_from_it']:,} "
            f"({x['first_answer_after_s']}) | {x['valid_until_next']:,} / "
            f"{x['valid_errors_until_next']} |"
        )
    lines += [
        "",
        f"Answers by version: {_counts(r['answers_by_version'])}.",
        "",
        "## Server resources",
        "",
        "| when | t s | RSS MiB | peak RSS MiB | threads | descriptors (sockets) |",
        "|---|---|---|---|---|---|",
    ]
    for label, x in (
        ("idle, before the load", res["idle_before"]),
        ("start (after the warm-up)", start),
        ("end", end),
        ("idle, after the load", res["idle_after"]),
    ):
        if x:
            lines.append(
                f"| {label} | {x.get('t', '')} | {x['rss_kb'] / 1024:.1f} | "
                f"{x['peak_rss_kb'] / 1024:.1f} | {x['threads']} | {x['fds']} "
                f"({x['socket_fds']}) |"
            )
    rss = [round(x["rss_kb"] / 1024, 1) for x in res["samples"]]
    lines += [
        "",
        f"RSS every {SAMPLE_EVERY_S:g} s (MiB): {rss}. Median of the last window over the "
        f"first (a minute each after the warm-up; a third of it in a short run): "
        f"{_signed(res['rss_growth_window_medians'])}.",
        "",
        "## Load generator and server log",
        "",
        f"- Send lag behind the schedule: p50 {g['send_lag']['p50_ms']} ms, p99 "
        f"{g['send_lag']['p99_ms']} ms, max {g['send_lag']['max_ms']} ms; at most "
        f"{g['max_inflight']} requests in flight; {g['connections_opened']} connections opened, "
        f"{g['closed_by_server_after_answer']} closed by the server after a whole answer "
        f"(`Connection: close`, not counted as dropped), {g['closed_idle_by_client']} closed "
        f"by the client after {REUSE_IDLE_S:g} s idle.",
        f"- Status polls: {r['status_poller']['polls']}, failed: "
        f"{_counts(r['status_poller']['errors'])}.",
        f"- Server log: {r['server_log']['unhandled_errors_logged']} unhandled errors (500) "
        f"logged; exceptions: {_counts(r['server_log']['tracebacks'])}.",
    ]
    if r["server_exited_early"]:
        lines.append(f"- **The server exited early**: {r['server_exited_early']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the soak (or, as `load`, its load process)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("role", nargs="?", choices=["load"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=600.0, help="length (default 600)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (default 200)")
    parser.add_argument(
        "--swap-every", type=float, default=60.0, help="seconds between new versions (default 60)"
    )
    parser.add_argument(
        "--corrupt",
        choices=["both", "flipped", "nan", "none"],
        default="both",
        help="corrupt versions to drop in (default both)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the request mix's seed")
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="where soak.json and soak.md go (default bench/results)",
    )
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "load":
        _load_main(args)
        return
    result = run(args)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.results / "soak.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
