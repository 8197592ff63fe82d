"""`python -m bench.events`: `POST /v1/events` ingestion and event-to-recommendation delay.

Trains a small repository (issue #17's freshness setup: `two_tower` retrieval + `fism` ranker,
both reading each user's history) on the synthetic grouped dataset with item content
(default 4,000 users x 600 items), then for each online store (`--stores`, default SQLite and
a real `redis-server` on a free port) starts the real server (`python -m pipeline serve`, one
uvicorn worker) and, while `/recommend` runs open-loop at 200 req/s in the background
(bench/serve_load.py in its own process), measures:

- ingestion: batches of 1 and of 100 events posted by `--clients` concurrent closed-loop
  clients for `--seconds` each: events/s accepted, requests/s, per-request latency
  p50/p90/p99, errors;
- event-to-recommendation delay, `--delay-samples` times: a user's top /recommend item, a click
  on it posted, then /recommend polled (no sleep) until the item is gone; the delay runs from
  just before the POST to the answer of the first /recommend without it.

Everything (server, Redis, both load generators) shares the machine's cores. Writes
bench/results/events.{json,md} (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads; the children (server, load) inherit it

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.serve import free_port  # noqa: E402
from bench.serve_two_stage import Server, _machine  # noqa: E402

__all__ = ["main", "markdown"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_EVENTS_PER_S = 2000.0
TARGET_P99_MS_100 = 20.0
TARGET_DELAY_S = 1.0
RECOMMEND_RPS = 200.0
BATCHES = (1, 100)
_DELAY_TIMEOUT_S = 5.0  # a sample whose item is still there after this counts as a miss


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--users", type=int, default=4000)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--seconds", type=float, default=15.0, help="seconds per batch size")
    p.add_argument("--stores", default="sqlite,redis", help="comma-separated: sqlite,redis")
    p.add_argument("--clients", type=int, default=4, help="concurrent closed-loop posters")
    p.add_argument("--recommend-rate", type=float, default=RECOMMEND_RPS,
                   help="background /recommend req/s (open loop)")  # fmt: skip
    p.add_argument("--delay-samples", type=int, default=50)
    rate = "events/s offered in all (0: closed loop, as fast as answered)"
    p.add_argument("--events-rate", type=float, default=TARGET_EVENTS_PER_S, help=rate)
    p.add_argument("--epochs", type=int, nargs=2, default=[4, 3], metavar=("TWO_TOWER", "FISM"))
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the json and md")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    split = ("events to a second server process (same config, store and raw log), /recommend "
             "to the first: an ingestion tier beside the serving tier")  # fmt: skip
    p.add_argument("--split", action="store_true", help=split)
    return p.parse_args(argv)


# ---- the repository -------------------------------------------------------------------------


def _train(root: Path, users: int, items: int, epochs: tuple[int, int]) -> dict:
    """Synthetic grouped dataset with item content; two_tower and fism exported to root/models."""
    from peppercorn.config import TrainingConfig
    from training.data import open_dataset
    from training.data.synthetic import write_synthetic_dataset
    from training.export import export_model
    from training.trainer import Trainer

    start = time.monotonic()
    write_synthetic_dataset(root, users=users, items=items, groups=8, per_user=12,
                            item_content=True, seed=3)  # fmt: skip
    dataset = open_dataset(str(root))
    runs = {
        "two_tower": (TrainingConfig(epochs=epochs[0], batch_size=512, learning_rate=0.01, seed=1),
                      {"dim": 32, "id_dim": 32, "layers": [64], "uniform_negatives": 64}),
        "fism": (TrainingConfig(epochs=epochs[1], batch_size=512, learning_rate=0.01, seed=1),
                 {"factors": 32}),
    }  # fmt: skip
    seconds = {}
    for name, (cfg, params) in runs.items():
        t0 = time.monotonic()
        trainer = Trainer(dataset, cfg, name, params, root / f"ck-{name}", progress=False)
        export_model(trainer.fit(), dataset, trainer.seen, root / "models", name, None)
        seconds[name] = round(time.monotonic() - t0, 1)
    return {"train_seconds": seconds, "build_seconds": round(time.monotonic() - start, 1),
            "epochs": {"two_tower": epochs[0], "fism": epochs[1]}}  # fmt: skip


def _config(path: Path, tmp: Path, store: str, redis_url: str | None) -> Path:
    lines = [
        f"paths:\n  data_root: {tmp / 'data'}\n  model_repository: {tmp / 'models'}",
        "model:\n  name: fism",
        "serving:\n  poll_interval_s: 30\n  recommend:\n    retrieval: two_tower\n"
        "    ranking: fism\n    candidates: 100",
        f"online_store:\n  kind: {store}\n  max_events: 1000\n  max_skew_s: 300",
    ]
    if redis_url:
        lines.append(f"  redis_url: {redis_url}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Redis:
    """A real `redis-server` on a free loopback port, without persistence."""

    def __init__(self, directory: Path):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not installed (apt-get install redis-server)")
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = (directory / "redis.log").open("wb")
        cmd = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
               "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start: {(directory / 'redis.log').read_text()}")

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- load -----------------------------------------------------------------------------------


class _Background:
    """bench/serve_load.py driving /recommend open-loop in its own process."""

    def __init__(self, base: str, bodies: Path, rate: float, seconds: float):
        cmd = [sys.executable, "-m", "bench.serve_load", "--url", f"{base}/recommend",
               "--bodies", str(bodies), "--rate", str(rate), "--seconds", str(seconds)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)  # fmt: skip

    def running(self) -> bool:
        return self.proc.poll() is None

    def result(self) -> dict:
        out, err = self.proc.communicate(timeout=120)
        if self.proc.returncode != 0:
            return {"failed": err[-2000:]}
        r = json.loads(out)
        keep = ("offered_rps", "achieved_rps", "completed", "errors", "p50_ms", "p99_ms", "max_ms")
        return {k: r[k] for k in keep}


def _recommend_bodies(path: Path, users: int, n: int = 5000, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for user in rng.integers(1, users + 1, n):
            fh.write(json.dumps({"user_id": str(user), "k": 10}) + "\n")
    return path


class _EventMaker:
    """Unique, valid events for random known users and items."""

    def __init__(self, users: int, items: int, seed: int):
        self.users, self.items = users, items
        self.rng = random.Random(seed)
        self.n = 0
        self.prefix = f"bench-{os.getpid()}-{seed}-{time.time_ns()}"

    def event(self, user: str | None = None, item: str | None = None, kind: str = "") -> dict:
        self.n += 1
        ts = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=0.5)
        kind = kind or ("watch" if self.rng.random() < 0.3 else "click")
        e = {"event_id": f"{self.prefix}-{self.n}",
             "user_id": user or str(self.rng.randint(1, self.users)),
             "item_id": item or str(self.rng.randint(1, self.items)),
             "event": kind, "ts": ts.isoformat()}  # fmt: skip
        if kind == "watch":
            e["watch_seconds"] = round(self.rng.uniform(5, 600), 1)
        return e

    def body(self, size: int) -> bytes:
        return json.dumps({"events": [self.event() for _ in range(size)]}).encode()


async def _post(reader, writer, head: bytes, body: bytes) -> tuple[int, bytes]:
    writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in raw.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(raw[9:12]), await reader.readexactly(length)


async def _ingest(base: str, size: int, clients: int, seconds: float, users: int,
                  items: int, rate: float = 0.0) -> dict:  # fmt: skip
    """`clients` posters of `size`-event batches for `seconds`: at `rate` events/s in all
    (each client sends on a fixed schedule; one answered late sends the next at once), or as
    fast as they are answered (closed loop) when `rate` is 0."""
    parts = urlsplit(base)
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\n").encode()  # fmt: skip
    latencies: list[float] = []
    counts = {"accepted": 0, "new": 0, "not_stored": 0}
    errors: dict[str, int] = {}
    clock = time.perf_counter
    start = clock()
    end = start + seconds

    async def client(c: int) -> None:
        maker = _EventMaker(users, items, seed=1000 * size + c)
        conn = None
        interval = clients * size / rate if rate > 0 else 0.0
        due = start + c * interval / clients  # the clients' sends interleave
        while clock() < end:
            if interval:
                await asyncio.sleep(max(0.0, due - clock()))
                due += interval
            body = maker.body(size)
            t0 = clock()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(parts.hostname, parts.port)
                status, answer = await _post(*conn, head, body)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                if conn is not None:
                    conn[1].close()
                conn = None
                await asyncio.sleep(0.01)
                continue
            latencies.append(clock() - t0)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
                continue
            r = json.loads(answer)
            counts["accepted"] += r["accepted"]
            counts["new"] += r["new"]
            counts["not_stored"] += 0 if r["stored"] else r["accepted"]
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = clock() - start
    lat = np.array(latencies) * 1e3
    pct = np.percentile(lat, [50, 90, 99]) if lat.size else [float("nan")] * 3
    return {
        "batch": size,
        "clients": clients,
        "offered_events_per_s": rate or None,
        "seconds": round(elapsed, 2),
        "requests": int(lat.size),
        "requests_per_s": round(lat.size / elapsed, 1),
        "events_per_s": round(counts["accepted"] / elapsed, 1),
        **counts,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms": round(float(pct[0]), 2),
        "p90_ms": round(float(pct[1]), 2),
        "p99_ms": round(float(pct[2]), 2),
        "max_ms": round(float(lat.max()), 2) if lat.size else None,
    }


def _top(client: httpx.Client, user: str) -> list[str] | None:
    """The user's top items; None when an overloaded server sheds the request (503)."""
    r = client.post("/recommend", json={"user_id": user, "k": 10})
    if r.status_code == 503:
        return None
    r.raise_for_status()
    return [str(it["item_id"]) for it in r.json()["items"]]


def _delays(base: str, events_base: str, n: int, users: int, items: int,
            background: _Background | None) -> dict:  # fmt: skip
    """Click a user's top item, poll /recommend until it is gone: seconds from the POST."""
    rng = random.Random(7)
    maker = _EventMaker(users, items, seed=99)
    delays, polls, misses, first = [], [], 0, 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(n):
            if background is not None and not background.running():
                break
            user = str(rng.randint(1, users))
            top = _top(client, user)
            if not top:
                continue
            item = top[0]
            body = {"events": [maker.event(user, item, "click")]}
            start = time.perf_counter()
            r = client.post(f"{events_base}/v1/events", json=body)
            r.raise_for_status()
            count = 0
            while True:
                count += 1
                now_top = _top(client, user)
                gone = now_top is not None and item not in now_top
                now = time.perf_counter()
                if gone or now - start > _DELAY_TIMEOUT_S:
                    break
            if not gone:
                misses += 1
                continue
            first += count == 1
            delays.append(now - start)
            polls.append(count)
    ms = np.array(delays) * 1e3
    return {
        "samples": len(delays),
        "misses": misses,
        "gone_at_first_poll": first,
        "max_polls": max(polls, default=0),
        "median_ms": round(float(np.median(ms)), 2) if ms.size else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
        "max_ms": round(float(ms.max()), 2) if ms.size else None,
        "delays_ms": [round(float(x), 2) for x in ms],
    }


def _warm_up(base: str, users: int, items: int) -> None:
    maker = _EventMaker(users, items, seed=5)
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(20):
            _top(client, str(i % users + 1))
            client.post("/v1/events", json={"events": [maker.event() for _ in range(10)]})


def _store_run(args, tmp: Path, store: str, bodies: Path) -> dict:
    redis = Redis(tmp / "redis") if store == "redis" else None
    server = ingest_server = None

    def servers_cpu() -> float:
        return sum(s.cpu_seconds() for s in (server, ingest_server) if s is not None)

    try:
        config = _config(tmp / f"{store}.yaml", tmp, store, redis.url if redis else None)
        server = Server(config, tmp / f"{store}.log")
        if args.split:  # the ingestion tier: its own process, the same store and raw log
            ingest_server = Server(config, tmp / f"{store}-ingest.log")
        events_base = ingest_server.base if ingest_server else server.base
        run: dict = {"load_seconds": server.load_seconds, "batches": {}, "split": args.split}
        _warm_up(server.base, args.users, args.items)

        def measure(what, seconds=args.seconds, background=args.recommend_rate > 0):
            bg = None
            if background:
                bg = _Background(server.base, bodies, args.recommend_rate, seconds + 2)
                time.sleep(1.0)  # the load generator's start-up
            cpu = [servers_cpu(), redis.cpu_seconds() if redis else 0.0, time.monotonic()]
            result = what(bg)
            spent = time.monotonic() - cpu[2]
            result["server_cores"] = round((servers_cpu() - cpu[0]) / spent, 2)
            if redis:
                result["redis_cores"] = round((redis.cpu_seconds() - cpu[1]) / spent, 2)
            result["recommend"] = bg.result() if bg is not None else {"off": True}
            return result

        def ingest(size, clients=args.clients, rate=args.events_rate):
            return lambda bg: asyncio.run(
                _ingest(events_base, size, clients, args.seconds, args.users, args.items, rate)
            )

        for size in BATCHES:
            run["batches"][str(size)] = measure(ingest(size))
        # The ingestion path's own cost: one client, no /recommend traffic beside it.
        run["alone"] = measure(ingest(100, clients=1, rate=0.0), background=False)
        run["delay"] = measure(
            lambda bg: _delays(
                server.base, events_base, args.delay_samples, args.users, args.items, bg
            ),
            seconds=max(2 * args.seconds, 5.0),  # the samples stop when the load does
        )
        run["memory_at_end"] = server.memory_mb()
        return run
    finally:
        if server is not None:
            server.stop()
        if ingest_server is not None:
            ingest_server.stop()
        if redis is not None:
            redis.stop()


def _verdict(run: dict) -> dict:
    big = run["batches"].get("100")
    best = max(run["batches"].values(), key=lambda x: x["events_per_s"])
    delay = run["delay"]
    delay_p99 = delay["p99_ms"] if delay["samples"] and not delay["misses"] else None
    return {
        "events_per_s": {"value": best["events_per_s"], "batch": best["batch"],
                         "met": best["events_per_s"] >= TARGET_EVENTS_PER_S},
        "p99_ms_batch_100": {"value": big["p99_ms"] if big else None,
                             "met": bool(big) and big["p99_ms"] <= TARGET_P99_MS_100},
        "delay_p99_ms": {"value": delay["p99_ms"], "misses": delay["misses"],
                         "met": delay_p99 is not None and delay_p99 <= TARGET_DELAY_S * 1e3},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; the results dict, also written to `--out`."""
    args = _parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-events-"))
    out: dict = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "users": args.users,
        "items": args.items,
        "seconds_per_batch_size": args.seconds,
        "clients": args.clients,
        "recommend_rate": args.recommend_rate,
        "events_rate": args.events_rate,
        "split": args.split,
        "targets": {
            "events_per_s": TARGET_EVENTS_PER_S,
            "p99_ms_batch_100": TARGET_P99_MS_100,
            "delay_s": TARGET_DELAY_S,
        },  # fmt: skip
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "stores": {},
    }

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "events.json").write_text(json.dumps(out, indent=1))
        (args.out / "events.md").write_text(markdown(out))

    try:
        out["build"] = _train(tmp, args.users, args.items, tuple(args.epochs))
        bodies = _recommend_bodies(tmp / "recommend.jsonl", args.users)
        save()
        for store in stores:
            run = _store_run(args, tmp, store, bodies)
            run["targets_met"] = _verdict(run)
            out["stores"][store] = run
            save()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    save()
    return out


# ---- the report -----------------------------------------------------------------------------


def _rate(rec: dict):
    return rec.get("achieved_rps", "off" if rec.get("off") else "failed")


def _met(flag: bool) -> str:
    return "**met**" if flag else "**NOT met**"


def markdown(r: dict) -> str:
    """The report of a (possibly partial) results dict."""
    m = r["machine"]
    lines = [
        "# Event ingestion and freshness (`python -m bench.events`)",
        "",
        f"{r['date']}, commit {m['commit']}. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_gib']} GiB RAM; 1-min load average {r['load_average_at_start'][0]} at start"
        + (f", {r['load_average_at_end'][0]} at end" if "load_average_at_end" in r else "")
        + ".",
        "",
        f"Synthetic grouped dataset with item content, {r['users']:,} users x {r['items']:,} "
        "items; `/recommend` = two_tower retrieval (100 candidates) + fism ranker, both reading "
        "the user's history and seen items from the online store. "
        + (
            "Two server processes with the same config, store and raw log: `POST /v1/events` "
            "goes to one (the ingestion tier), `/recommend` to the other (server cores: both). "
            if r.get("split")
            else "One server process (one uvicorn worker). "
        )
        + "During "
        f"every measurement `/recommend` (k = 10, random users) runs open-loop at "
        f"{r['recommend_rate']:g} req/s from bench/serve_load.py in its own process; "
        f"`POST /v1/events` comes from {r['clients']} concurrent clients (asyncio, "
        + (
            f"offering {r['events_rate']:g} events/s in all on a fixed schedule, "
            if r.get("events_rate")
            else "closed loop, "
        )
        + f"keep-alive) for {r['seconds_per_batch_size']:g} s per batch size; latency is per "
        "request, send to full answer. Server, Redis and both load generators share the same "
        "cores.",
    ]
    build = r.get("build")
    if build:
        lines += [
            "",
            f"- Repository built in {build['build_seconds']} s (training: "
            + ", ".join(f"{k} {v} s / {build['epochs'][k]} epochs"
                        for k, v in build["train_seconds"].items())
            + ").",
        ]  # fmt: skip
    for store, run in r.get("stores", {}).items():
        lines += [
            "",
            f"## {store}",
            "",
            f"Server ready {run['load_seconds']} s after start"
            + (f"; RSS at end {run['memory_at_end']['rss_mb']:,.0f} MiB"
               if run.get("memory_at_end") else "") + ".",
            "",
            "| batch | events/s | req/s | p50 ms | p90 ms | p99 ms | max ms | errors "
            "| server cores | /recommend achieved req/s | /recommend p50 ms "
            "| /recommend p99 ms |",
            "|---" * 12 + "|",
        ]  # fmt: skip
        for size, x in run["batches"].items():
            rec = x.get("recommend", {})
            cells = [size, x["events_per_s"], x["requests_per_s"], x["p50_ms"], x["p90_ms"],
                     x["p99_ms"], x["max_ms"], x["errors"],
                     x["server_cores"] if "redis_cores" not in x
                     else f"{x['server_cores']} (+ redis {x['redis_cores']})",
                     _rate(rec), rec.get("p50_ms", ""),
                     rec.get("p99_ms", "")]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        x = run.get("alone")
        if x:
            cells = ["100, alone (1 client, no /recommend)", x["events_per_s"],
                     x["requests_per_s"], x["p50_ms"], x["p90_ms"], x["p99_ms"], x["max_ms"],
                     x["errors"], x["server_cores"], "off", "", ""]  # fmt: skip
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        d = run["delay"]
        rec = d.get("recommend", {})
        lines += [
            "",
            f"Event-to-recommendation delay ({d['samples']} samples, {d['misses']} still "
            f"showing the item after {_DELAY_TIMEOUT_S:g} s): median **{d['median_ms']} ms**, "
            f"p99 **{d['p99_ms']} ms**, max {d['max_ms']} ms; gone at the first /recommend "
            f"after the POST in {d['gone_at_first_poll']} of {d['samples']} (most polls "
            f"{d['max_polls']}). /recommend meanwhile: {_rate(rec)} "
            f"req/s achieved, p99 {rec.get('p99_ms', '')} ms.",
        ]
        t = run.get("targets_met")
        if t:
            e, p, dl = t["events_per_s"], t["p99_ms_batch_100"], t["delay_p99_ms"]
            lines += [
                "",
                f"- >= {r['targets']['events_per_s']:,.0f} events/s ingested: {_met(e['met'])} "
                f"({e['value']:,} events/s with {e['batch']}-event batches).",
                f"- p99 <= {r['targets']['p99_ms_batch_100']:g} ms for a 100-event batch: "
                f"{_met(p['met'])} (p99 {p['value']} ms).",
                f"- Event-to-recommendation <= {r['targets']['delay_s']:g} s: {_met(dl['met'])} "
                f"(p99 {dl['value']} ms, {dl['misses']} misses).",
            ]
    lines += _limits(r)
    return "\n".join(lines) + "\n"


def _limits(r: dict) -> list[str]:
    """What bounds the numbers, when a target is missed."""
    runs = r.get("stores", {})
    missed = [s for s, run in runs.items()
              if not all(t["met"] for t in run.get("targets_met", {}).values())]  # fmt: skip
    if not missed:
        return []
    cores = sorted({x["server_cores"] for run in runs.values() for x in run["batches"].values()})
    m = r["machine"]
    return [
        "",
        "## What limits it",
        "",
        f"Targets missed for {', '.join(missed)}. "
        + (
            f"The two server processes used {cores[0]}-{cores[-1]} cores together during the "
            "ingestion runs. "
            if r.get("split")
            else "The server is one uvicorn worker: its CPU use "
            f"during the ingestion runs was {cores[0]}-{cores[-1]} cores, i.e. one Python "
            "process bound by the GIL, shared between the 200 req/s of /recommend (retrieval + "
            "ranking per request) and the event batches (validation, the raw-log append and the "
            "store write per event, in Python); the 'alone' row is the ingestion path's own "
            "cost. "
        )
        + "The load generators, Redis and the server all ran on the same "
        f"{m['cores']} cores of a shared machine (1-min load average "
        f"{r['load_average_at_start'][0]} at start"
        + (f", {r['load_average_at_end'][0]} at end" if "load_average_at_end" in r else "")
        + "): latencies include queueing behind the background /recommend traffic and behind "
        "the other closed-loop clients, so the p99s measure contention here more than the "
        "cost of a batch. The /recommend figures cover the load generator's whole window "
        "(about 1 s before and after each measurement too).",
    ]


if __name__ == "__main__":
    print(markdown(main()))
