"""Open-loop HTTP load generator (a separate process from the server under test).

Requests are *scheduled* at a constant arrival rate and each latency is measured from its
scheduled start, not from when a connection became free, so a slow server cannot hide its
queueing (no coordinated omission).  Plain asyncio streams with keep-alive connections keep
the generator itself cheap.

`python -m bench.serve_load --url http://127.0.0.1:PORT/path --bodies FILE.jsonl --rate R
--seconds S` prints one JSON object: offered/achieved rate, errors, latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import numpy as np

__all__ = ["Conn", "raw_requests", "run_load"]


class Conn:
    """One keep-alive HTTP/1.1 connection: send a raw request, read the status and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        """Send `raw`, read the whole response; its status code."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


def raw_requests(url: str, bodies: list[bytes]) -> list[bytes]:
    """The raw HTTP requests for `url`: one POST per body, or a single GET without bodies."""
    parts = urlsplit(url)
    method = "POST" if bodies else "GET"
    head = f"{method} {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if not bodies:
        return [(head + "\r\n").encode()]
    return [
        (head + f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n").encode() + b
        for b in bodies
    ]


async def run_load(url: str, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Offer `rate` requests/s for `seconds`; latencies from each request's scheduled time."""
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    raws = raw_requests(url, bodies)
    n = max(1, int(rate * seconds))
    idle: list[Conn] = []
    latencies = np.full(n, np.nan)
    errors: dict[str, int] = {}
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    clock = time.perf_counter
    start = clock() + 0.05

    async def one(i: int) -> None:
        scheduled = start + i / rate
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = Conn(*await asyncio.open_connection(host, port))
            status = await conn.request(raws[i % len(raws)])
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        latencies[i] = clock() - scheduled
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
        idle.append(conn)

    tasks = []
    for i in range(n):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.wait(tasks, timeout=seconds + 30)
    elapsed = clock() - start
    for conn in idle:
        conn.writer.close()
    done = latencies[~np.isnan(latencies)]
    pct = np.percentile(done, [50, 95, 99]) * 1e3 if done.size else [float("nan")] * 3
    return {
        "offered_rps": rate,
        "requests": n,
        "completed": int(done.size),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "achieved_rps": round(done.size / elapsed, 1),
        "p50_ms": round(float(pct[0]), 3),
        "p95_ms": round(float(pct[1]), 3),
        "p99_ms": round(float(pct[2]), 3),
        "max_ms": round(float(done.max() * 1e3), 3) if done.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", help="JSON-lines file of request bodies (POST); none: GET")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    bodies = []
    if args.bodies:
        with open(args.bodies, "rb") as fh:
            bodies = [line.strip() for line in fh if line.strip()]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    t0 = time.perf_counter()
    result = asyncio.run(run_load(args.url, bodies, args.rate, args.seconds))
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
