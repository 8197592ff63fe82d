"""`python -m bench.serve_two_stage`: /recommend latency at platform size, two-stage vs one-stage.

Builds a two-tower retrieval version and a NeuMF ranker with random weights over 1,000,000
users and 100,000 items (bench/two_stage_models.py, in a child process whose memory is given
back before the server starts) into a temporary repository (removed at the end unless
`--keep`), starts the
real server (`python -m pipeline serve`, one uvicorn worker) with `serving.recommend:
{retrieval: two_tower, ranking: neumf, candidates: 200}`, waits for /readyz, warms it up,
then drives `/recommend` (k = 10, random known users, exclude_seen) open-loop from another
process (bench/serve_load.py) at each rate for $BENCH_SERVE_SECONDS seconds (default 30), and
searches for the highest rate that still meets the target (p99 <= 25 ms, no errors, keeps
up). Where the time goes: each level's mean per stage from the server's
`peppercorn_recommend_stage_seconds` histogram, and afterwards per-stage percentiles of
requests sent one at a time with `debug: true`. Then the one-stage baseline: the same ranker
scoring all items per request (a server without `serving.recommend.retrieval`) at low rates.

The load generator runs on the same machine and shares its cores with the server. Writes
bench/results/serve_two_stage.{json,md} (or `--out`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads; the children (server, load) inherit it

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from bench.engine_machine import cpu_model  # noqa: E402
from bench.serve import free_port  # noqa: E402

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_P99_MS = 25.0
TARGET_RPS = 200
STAGES = ("retrieve", "filter", "rank", "top_k")
_READY_TIMEOUT_S = 900  # loading two versions over a million users takes a while


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serve_two_stage", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--candidates", type=int, default=200, help="serving.recommend.candidates")
    p.add_argument("--ranker", default="neumf")
    p.add_argument("--seconds", type=float,
                   default=float(os.environ.get("BENCH_SERVE_SECONDS", "30")),
                   help="seconds per load level ($BENCH_SERVE_SECONDS, default 30)")  # fmt: skip
    p.add_argument("--rates", type=float, nargs="+", default=[200, 500])
    p.add_argument("--baseline-rates", type=float, nargs="*", default=[5, 20],
                   help="one-stage (whole catalogue) rates; none: skip the baseline")  # fmt: skip
    p.add_argument("--no-search", action="store_true", help="skip the max-rate search")
    p.add_argument("--search-seconds", type=float, default=5.0, help="seconds per search step")
    p.add_argument("--debug-samples", type=int, default=200)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the json and md")
    p.add_argument("--keep", action="store_true", help="keep the temporary model repository")
    return p.parse_args(argv)


# ---- the server -----------------------------------------------------------------------------


def _config(path: Path, repo: Path, recommend: dict, models: list[str]) -> Path:
    lines = [
        "paths:",
        f"  model_repository: {repo}",
        "serving:",
        "  poll_interval_s: 30",
        f"  default_model: {recommend['ranking']}",
        "  models:",
        *(f"    {name}: {{}}" for name in models),
        "  recommend:",
        *(f"    {key}: {value}" for key, value in recommend.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Server:
    """`python -m pipeline serve` in its own process; `.load_seconds` until /readyz said 200."""

    def __init__(self, config: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        cmd = [sys.executable, "-m", "pipeline", "serve", "--config", str(config),
               "--port", str(self.port), "--log-level", "warning"]  # fmt: skip
        start = time.monotonic()
        # stderr to a file: a pipe nobody reads would stall the server once it filled.
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-3000:]}")
            if time.monotonic() - start > _READY_TIMEOUT_S:
                self.stop()
                raise RuntimeError(f"server not ready within {_READY_TIMEOUT_S} s")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.load_seconds = round(time.monotonic() - start, 1)

    def memory_mb(self) -> dict:
        """The server's resident memory now and at its peak (VmRSS, VmHWM), MiB."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.is_file():
            return {}
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return {k: round(int(fields[f].split()[0]) / 1024, 1)
                for k, f in (("rss_mb", "VmRSS"), ("peak_rss_mb", "VmHWM"))}  # fmt: skip

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server has used (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stage_totals(self) -> dict[str, tuple[float, float]]:
        """(sum seconds, count) of each /recommend stage and of the whole request, so far."""
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        out: dict[str, list[float]] = {}
        pattern = (r'^peppercorn_(recommend_stage_seconds|request_latency_seconds)_(sum|count)'
                   r'\{(?:stage|endpoint)="([^"]+)"\} (\S+)$')  # fmt: skip
        for metric, kind, label, value in re.findall(pattern, text, re.M):
            if metric == "request_latency_seconds" and label != "/recommend":
                continue
            key = label if metric.startswith("recommend") else "request"
            out.setdefault(key, [0.0, 0.0])[kind == "count"] = float(value)
        return {k: (v[0], v[1]) for k, v in out.items()}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# ---- load and measurements ------------------------------------------------------------------


def _bodies(path: Path, users: int, n: int = 5000, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for user in rng.integers(1, users + 1, n):
            fh.write(json.dumps({"user_id": f"u{user:07d}", "k": 10, "exclude_seen": True}) + "\n")
    return path


def _load(server: Server, bodies: Path, rate: float, seconds: float) -> dict:
    """One open-loop level from bench/serve_load.py, with the server's mean time per stage."""
    before = server.stage_totals()
    cmd = [sys.executable, "-m", "bench.serve_load", "--url", f"{server.base}/recommend",
           "--bodies", str(bodies), "--rate", str(rate), "--seconds", str(seconds)]  # fmt: skip
    load_before, cpu_before = os.getloadavg()[0], server.cpu_seconds()
    children, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - start
    result = json.loads(out.stdout)
    # Cores used while the level ran, by the server and by the load generator beside it.
    spent = resource.getrusage(resource.RUSAGE_CHILDREN)
    loadgen = spent.ru_utime + spent.ru_stime - children.ru_utime - children.ru_stime
    server_cpu = server.cpu_seconds() - cpu_before
    result["server_cores"] = round(server_cpu / elapsed, 2)
    result["loadgen_cores"] = round(loadgen / elapsed, 2)
    # CPU per answered request: unlike latency, barely moved by other processes' load.
    result["server_cpu_ms_per_request"] = round(server_cpu * 1000 / max(result["completed"], 1), 2)
    after = server.stage_totals()
    means = {}
    for key, (total, count) in after.items():
        t0, c0 = before.get(key, (0.0, 0.0))
        if count > c0:
            means[key] = round((total - t0) / (count - c0) * 1000, 3)
    result["server_mean_ms"] = means
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def _meets_target(r: dict) -> bool:
    return (
        r["errors"] == 0
        and r["achieved_rps"] >= 0.97 * r["offered_rps"]
        and r["p99_ms"] <= TARGET_P99_MS
    )


def _max_rate(server: Server, bodies: Path, start: float, seconds: float) -> dict:
    """Highest offered rate meeting the target: double until one fails, then bisect 3 steps."""
    runs, good, bad, rate = [], 0.0, None, start
    while bad is None and rate <= 20_000:
        r = _load(server, bodies, rate, seconds)
        runs.append(r)
        good, bad, rate = (rate, None, rate * 2) if _meets_target(r) else (good, rate, rate)
    for _ in range(3):
        if bad is None or bad - good <= max(10, 0.05 * bad):
            break
        mid = round((good + bad) / 2)
        r = _load(server, bodies, mid, seconds)
        runs.append(r)
        good, bad = (mid, bad) if _meets_target(r) else (good, mid)
    return {"max_rps_within_target": good, "runs": runs}


def _debug_samples(server: Server, users: int, n: int, seed: int = 2) -> dict:
    """Per-stage percentiles (ms) of `n` requests sent one at a time with debug: true."""
    rng = np.random.default_rng(seed)
    per_stage: dict[str, list[float]] = {}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for user in rng.integers(1, users + 1, n):
            body = {"user_id": f"u{user:07d}", "k": 10, "exclude_seen": True, "debug": True}
            start = time.perf_counter()
            answer = client.post("/recommend", json=body)
            round_trip = (time.perf_counter() - start) * 1000
            answer.raise_for_status()
            timings = answer.json()["debug"]["timings_ms"]
            for stage, ms in {**timings, "server_stages": sum(timings.values()),
                              "round_trip": round_trip}.items():  # fmt: skip
                per_stage.setdefault(stage, []).append(ms)
    stages = {
        stage: {f"p{q}_ms": round(float(np.percentile(v, q)), 3) for q in (50, 90, 99)}
        for stage, v in per_stage.items()
    }
    return {"requests": int(n), "stages": stages}


def _machine() -> dict:
    kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))  # fmt: skip
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gib": round(kib / 2**20, 1),
            "commit": commit or "unknown"}  # fmt: skip


# ---- the benchmark --------------------------------------------------------------------------


def _two_stage(args, repo: Path, tmp: Path, bodies: Path, out: dict, save) -> None:
    recommend = {"retrieval": "two_tower", "ranking": args.ranker, "candidates": args.candidates}
    config = _config(tmp / "two_stage.yaml", repo, recommend, ["two_tower", args.ranker])
    server = Server(config, tmp / "two_stage.log")
    try:
        run = out["two_stage"] = {"load_seconds": server.load_seconds,
                                  "memory_after_load": server.memory_mb(), "rates": {}}  # fmt: skip
        _load(server, bodies, min(50.0, args.rates[0]), 3)  # warm-up, not reported
        for rate in args.rates:
            run["rates"][f"{rate:g}"] = _load(server, bodies, rate, args.seconds)
            save()
        if not args.no_search:
            run["search"] = _max_rate(server, bodies, args.rates[0], args.search_seconds)
        run["stages_one_at_a_time"] = _debug_samples(server, args.users, args.debug_samples)
        run["memory_at_end"] = server.memory_mb()
    finally:
        server.stop()


def _one_stage(args, repo: Path, tmp: Path, bodies: Path, out: dict, save) -> None:
    config = _config(tmp / "one_stage.yaml", repo, {"ranking": args.ranker}, [args.ranker])
    server = Server(config, tmp / "one_stage.log")
    try:
        run = out["one_stage"] = {"load_seconds": server.load_seconds, "rates": {}}
        _load(server, bodies, min(2.0, args.baseline_rates[0]), 2)  # warm-up
        for rate in args.baseline_rates:
            run["rates"][f"{rate:g}"] = _load(server, bodies, rate, args.seconds)
            save()
        run["memory_at_end"] = server.memory_mb()
    finally:
        server.stop()


def _build(args, repo: Path) -> dict:
    """Build the versions in a child process, whose memory is gone before the server starts."""
    cmd = [sys.executable, "-m", "bench.two_stage_models", str(repo), "--users", str(args.users),
           "--items", str(args.items), "--ranker", args.ranker]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the versions failed: {done.stderr[-3000:]}")
    built = json.loads(done.stdout)
    built["build_wall_seconds"] = round(time.monotonic() - start, 1)
    return built


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; the results dict, also written to `--out`."""
    args = _parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-two-stage-"))
    repo = tmp / "models"
    out: dict = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "users": args.users,
        "items": args.items,
        "candidates": args.candidates,
        "ranker": args.ranker,
        "seconds_per_rate": args.seconds,
        "target": {"p99_ms": TARGET_P99_MS, "rps": TARGET_RPS},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serve_two_stage.json").write_text(json.dumps(out, indent=1))
        (args.out / "serve_two_stage.md").write_text(markdown(out))

    try:
        out["models"] = _build(args, repo)
        bodies = _bodies(tmp / "recommend.jsonl", args.users)
        save()
        _two_stage(args, repo, tmp, bodies, out, save)
        save()
        if args.baseline_rates:
            _one_stage(args, repo, tmp, bodies, out, save)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    target = out["two_stage"]["rates"].get(f"{TARGET_RPS:g}")
    out["target_met"] = None if target is None else _meets_target(target)
    save()
    return out


# ---- the report -----------------------------------------------------------------------------


# bench/serve_load.py reports p50/p95/p99/max; p90 shows up here once it reports that too.
_PERCENTILES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def _row(label: str, rate: str, x: dict, columns: list[str]) -> str:
    cells = [label, rate, x["achieved_rps"], *(x[c] for c in columns), x["errors"]]
    cells += [x.get("server_cores", ""), x.get("loadgen_cores", ""), x["load_average"][0]]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _memory(run: dict) -> str:
    parts = [
        f"{k.removeprefix('memory_').replace('_', ' ')}: RSS {v['rss_mb']:,.0f} MiB, peak "
        f"{v['peak_rss_mb']:,.0f} MiB"
        for k, v in run.items()
        if k.startswith("memory") and v
    ]
    return "; ".join(parts)  # fmt: skip


def markdown(r: dict) -> str:
    """The report of a (possibly partial) results dict."""
    m = r["machine"]
    lines = [
        "# /recommend at platform size: two-stage vs one-stage (`python -m bench.serve_two_stage`)",
        "",
        f"{r['date']}, commit {m['commit']}. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['ram_gib']} GiB RAM; 1-min load average {r['load_average_at_start'][0]} at start"
        + (f", {r['load_average_at_end'][0]} at end" if "load_average_at_end" in r else "")
        + ".",
        "",
        f"Catalogue: {r['users']:,} users x {r['items']:,} items; retrieval two_tower "
        f"(faiss ANN), ranker {r['ranker']}, {r['candidates']} candidates, k = 10, exclude_seen; "
        "random weights (bench/two_stage_models.py). One uvicorn worker; open-loop load from "
        "bench/serve_load.py in its own process **on the same cores** (latency from each "
        f"request's scheduled start), {r['seconds_per_rate']:g} s per rate.",
    ]
    models = r.get("models")
    if models:
        vec = models.get("item_vectors") or {}
        lines += [
            "",
            f"- Versions built in {models['build_seconds']} s (peak RSS "
            f"{models.get('peak_rss_mb', '?')} MiB); on disk "
            + ", ".join(f"{k} {v} MB" for k, v in models["sizes_mb"].items())
            + (f"; ANN index {json.dumps(vec['index'])}" if "index" in vec else "")
            + (f"; the main category explains {vec['explained_by_category']:.0%} of the item "
               "vectors' spread (clustered, not isotropic)." if vec else "."),
        ]  # fmt: skip
    for key, name in (("two_stage", "two-stage"), ("one_stage", "one-stage (all items)")):
        if key in r:
            run = r[key]
            lines.append(
                f"- {name} server: ready {run['load_seconds']} s after start; {_memory(run)}."
            )
    levels = [
        (name, rate, x)
        for key, name in (("two_stage", "two-stage"), ("one_stage", "one-stage (all items)"))
        for rate, x in r.get(key, {}).get("rates", {}).items()
    ]
    columns = [c for c in _PERCENTILES if any(c in x for _, _, x in levels)]
    heads = ["server", "offered req/s", "achieved req/s", *(f"{c[:-3]} ms" for c in columns)]
    lines += [
        "",
        "| " + " | ".join([*heads, "errors", "server cores", "loadgen cores", "load avg"]) + " |",
        "|---" * (len(heads) + 4) + "|",
        *(_row(name, rate, x, columns) for name, rate, x in levels),
    ]
    lines += _where_the_time_goes(r.get("two_stage", {}))
    lines += _verdict(r)
    return "\n".join(lines) + "\n"


def _where_the_time_goes(run: dict) -> list[str]:
    if not run.get("rates"):
        return []
    lines = [
        "",
        "## Where the time goes",
        "",
        "Server-side means under each load, ms: each stage (peppercorn_recommend_stage_seconds), "
        "their sum, the whole request as the server's middleware times it (`request`: the "
        "stages plus parsing, dependencies, the thread-pool hop and JSON, and any wait for a "
        "scoring slot or the GIL), and the server's CPU per answered request (CPU time, so "
        "less moved by other processes than the latencies are). Client p50 minus `request` is "
        "the time in the event loop's queue and on the wire.",
        "",
        "| offered req/s | " + " | ".join(STAGES) + " | stages | request | server CPU/request "
        "| client p50 |",
        "|---" * (len(STAGES) + 5) + "|",
    ]
    levels = list(run["rates"].items())
    levels += [(f"{x['offered_rps']:g} (search)", x) for x in run.get("search", {}).get("runs", [])]
    for rate, x in levels:
        means = x.get("server_mean_ms", {})
        cells = [means.get(s, "") for s in STAGES]
        cells.append(round(sum(means.get(s, 0.0) for s in STAGES), 3))
        cells += [means.get("request", ""), x.get("server_cpu_ms_per_request", ""), x["p50_ms"]]
        lines.append(f"| {rate} | " + " | ".join(str(c) for c in cells) + " |")
    samples = run.get("stages_one_at_a_time")
    if samples:
        lines += [
            "",
            f"{samples['requests']} requests one at a time after the load: `debug.timings_ms` "
            "percentiles (`server_stages` their sum, `round_trip` the client's):",
            "",
            "| stage | p50 ms | p90 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for stage, p in samples["stages"].items():
            lines.append(f"| {stage} | {p['p50_ms']} | {p['p90_ms']} | {p['p99_ms']} |")
    return lines


def _verdict(r: dict) -> list[str]:
    lines = [""]
    run = r.get("two_stage", {})
    target = run.get("rates", {}).get(f"{TARGET_RPS:g}")
    if target is not None:
        met = _meets_target(target)
        lines.append(
            f"- Target p99 <= {TARGET_P99_MS:g} ms at {TARGET_RPS} req/s: "
            f"**{'met' if met else 'NOT met'}** (p99 {target['p99_ms']} ms, achieved "
            f"{target['achieved_rps']} req/s, {target['errors']} errors)."
        )
    if "search" in run:
        lines.append(
            f"- Highest offered rate meeting it (no errors, >= 97% achieved, p99 <= "
            f"{TARGET_P99_MS:g} ms; {len(run['search']['runs'])} steps): "
            f"{run['search']['max_rps_within_target']} req/s."
        )
    one = r.get("one_stage", {}).get("rates")
    if one:
        worst = max(one.values(), key=lambda x: x["offered_rps"])
        lines.append(
            f"- One-stage (the ranker over all {r['items']:,} items per request) at "
            f"{worst['offered_rps']:g} req/s: p50 {worst['p50_ms']} ms, p99 {worst['p99_ms']} "
            f"ms, achieved {worst['achieved_rps']} req/s."
        )
    return lines


if __name__ == "__main__":
    print(markdown(main()))
