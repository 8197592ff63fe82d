"""`python -m bench.serve_readyz`: does /readyz stay fast while the server is busy scoring?

Starts the real server (`python -m pipeline serve`, one uvicorn worker) on a NeuMF-like model with a
large catalogue (100,000 items, random weights, built with the engine by bench/serve_model.py),
so one full-catalogue /recommend takes tens of milliseconds.  Four clients (a separate
process, closed loop, one keep-alive connection each) send full-catalogue /recommend for
`--seconds` while a fifth samples /readyz every 20 ms from this process.  Reports /readyz
p50/p90/p99/max and /recommend throughput; the target is /readyz p99 under 50 ms.

`--old DIR` runs the same against another checkout too (e.g. `git worktree add /tmp/old
<commit>`: the code before scoring moved off the event loop), with this venv's Python and
`PYTHONPATH=DIR`.  Writes bench/results/serve_readyz.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from bench.serve import free_port, start_process
from bench.serve_load import Conn, raw_requests

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
N_USERS, N_ITEMS = 943, 100_000
CLIENTS, SAMPLE_EVERY_S, TARGET_P99_MS = 4, 0.020, 50.0


def _ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "p50_ms": round(float(p50), 2),
        "p90_ms": round(float(p90), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(a.max()), 2),
    }


# ---- the load process ----------------------------------------------------------------
async def _hammer(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    parts = urlsplit(url)
    raws = raw_requests(url, bodies)
    conns = [
        Conn(*await asyncio.open_connection(parts.hostname, parts.port)) for _ in range(clients)
    ]
    latencies: list[float] = []
    errors = 0
    print("go", flush=True)  # connections open: the sampler may start
    start = time.perf_counter()
    end = start + seconds

    async def client(i: int, conn: Conn) -> None:
        nonlocal errors
        n = i
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status = await conn.request(raws[n % len(raws)])
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
            n += clients

    await asyncio.gather(*(client(i, c) for i, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.writer.close()
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / elapsed, 1),
        "latency": _ms(latencies),
    }


def _load_main(args: argparse.Namespace) -> None:
    bodies = [line.strip() for line in Path(args.bodies).read_bytes().splitlines() if line]
    result = asyncio.run(_hammer(args.url, bodies, args.clients, args.seconds))
    print(json.dumps(result), flush=True)


# ---- this process: the server, the sampler -------------------------------------------
def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status, time.perf_counter() - t0


def _sample_readyz(port: int, seconds: float) -> tuple[list[float], int]:
    """Latencies of /readyz sampled every 20 ms for `seconds`, and how many were not 200.

    Like a prober, ticks missed while waiting for a slow answer are skipped: catching up
    with back-to-back samples would add fast answers right after every slow one."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, bad = [], 0
    end = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while next_at < end:
        status, took = _get(conn, "/readyz")
        latencies.append(took)
        bad += status != 200
        now = time.perf_counter()
        while next_at <= now:
            next_at += SAMPLE_EVERY_S
        time.sleep(next_at - now)
    conn.close()
    return latencies, bad


def _idle_recommend(port: int, bodies: list[bytes], n: int = 20) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    took = []
    for body in bodies[:n]:
        t0 = time.perf_counter()
        conn.request("POST", "/recommend", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
        took.append(time.perf_counter() - t0)
    conn.close()
    return _ms(took)


def _run(label: str, code_dir: Path, repo: Path, bodies: Path, seconds: float) -> dict:
    config = bodies.parent / "serve.yaml"
    config.write_text(f"paths:\n  model_repository: {repo}\nserving:\n  poll_interval_s: 5\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    # Checkouts before the one CLI started the server with `python -m serving`.
    old_cli = (code_dir / "serving" / "__main__.py").is_file()
    command = ["-m", "serving"] if old_cli else ["-m", "pipeline", "serve"]
    server = start_process(
        [*command, "--config", str(config), "--port", str(port), "--log-level", "warning"],
        f"http://127.0.0.1:{port}/readyz",
        cwd=code_dir,
        env=env,
    )
    try:
        lines = bodies.read_bytes().splitlines()
        idle = _idle_recommend(port, lines)
        idle_ready, _ = _sample_readyz(port, 2.0)
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.serve_readyz", "load", "--url",
             f"http://127.0.0.1:{port}/recommend", "--bodies", str(bodies),
             "--clients", str(CLIENTS), "--seconds", str(seconds)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        if load.stdout.readline().strip() != "go":
            raise RuntimeError(f"the load process did not start (exit {load.wait()})")
        busy, not_ready = _sample_readyz(port, seconds - 0.5)
        out, _ = load.communicate(timeout=seconds + 120)
        recommend = json.loads(out.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "code": label,
        "recommend_alone": idle,
        "readyz_idle": _ms(idle_ready),
        "readyz_under_load": {**_ms(busy), "not_200": not_ready},
        "recommend_under_load": recommend,
        "target_met": _ms(busy)["p99_ms"] < TARGET_P99_MS,
    }


def _commit(code_dir: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(code_dir), *args], capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "serving", "peppercorn", "engine")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " + local changes" if dirty else ""
    )


def _markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# /readyz while the server scores (`python -m bench.serve_readyz`)",
        "",
        f"Model: NeuMF-like (GMF 8 + MLP 64-32-16-8, random weights), {r['items']:,} items, "
        f"{r['users']} users. {CLIENTS} clients (one process, closed loop, keep-alive) send "
        f"full-catalogue `/recommend` (k=10) for {r['seconds']:.0f} s while a fifth samples "
        f"`/readyz` on a {SAMPLE_EVERY_S * 1e3:.0f} ms grid (ticks missed while waiting are "
        "skipped, as a prober's would be; latency from sending to the whole answer). One "
        "uvicorn worker, one BLAS thread, the server's default scoring threads (one per core).",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}; load average "
        f"(1, 5, 15 min) {m['loadavg_at_start']} at the start, {m['loadavg_at_end']} at the "
        f"end; {r['date']}.",
        "",
        "| code | /readyz p50 | p90 | p99 | max (ms) | /recommend req/s under load | "
        "/recommend p50 / p99 (ms) | one /recommend alone, p50 (ms) | idle /readyz p50 (ms) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        ready, rec = run["readyz_under_load"], run["recommend_under_load"]
        lines.append(
            f"| {run['code']} | {ready['p50_ms']} | {ready['p90_ms']} | {ready['p99_ms']} | "
            f"{ready['max_ms']} | {rec['throughput_rps']} | {rec['latency']['p50_ms']} / "
            f"{rec['latency']['p99_ms']} | {run['recommend_alone']['p50_ms']} | "
            f"{run['readyz_idle']['p50_ms']} |"
        )
    lines.append("")
    for run in r["runs"]:
        ready, rec = run["readyz_under_load"], run["recommend_under_load"]
        lines.append(
            f"- {run['code']}: {ready['n']} /readyz samples ({ready['not_200']} not 200), "
            f"{rec['requests']} /recommend ({rec['errors']} errors); target /readyz p99 < "
            f"{TARGET_P99_MS:.0f} ms {'met' if run['target_met'] else 'NOT met'}."
        )
    if len(r["runs"]) > 1:
        lines += [
            "",
            f"`{r['runs'][0]['code']}` is another checkout (`--old {r['old']}`) run the same "
            "way: this venv's Python with `PYTHONPATH` at that checkout. The load average "
            "counts other work on the machine too: compare rows of one run, not runs.",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, as `load`, one load process of it)."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve_readyz", description=__doc__)
    parser.add_argument("role", nargs="?", choices=["load"], help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=20.0, help="load length (default 20)")
    parser.add_argument("--old", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bodies", help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, default=CLIENTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "load":
        _load_main(args)
        return
    from bench.serve_model import build_ml100k_shaped

    tmp = Path(tempfile.mkdtemp(prefix="bench-readyz-"))
    repo = tmp / "models"
    build_ml100k_shaped(repo, n_users=N_USERS, n_items=N_ITEMS)
    rng = np.random.default_rng(0)
    bodies = tmp / "recommend.jsonl"
    users = rng.integers(1, N_USERS + 1, 500)
    bodies.write_text("".join(json.dumps({"user_id": int(u), "k": 10}) + "\n" for u in users))
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "items": N_ITEMS,
        "users": N_USERS,
        "seconds": args.seconds,
        "old": str(args.old) if args.old else None,
        "runs": [],
    }
    checkouts = [(f"this checkout ({_commit(ROOT)})", ROOT)]
    if args.old is not None:
        checkouts.insert(0, (f"before ({_commit(args.old)})", args.old.resolve()))
    for label, code_dir in checkouts:
        print(f"measuring {label} ...", file=sys.stderr)
        result["runs"].append(_run(label, code_dir, repo, bodies, args.seconds))
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_readyz.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / "serve_readyz.md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
