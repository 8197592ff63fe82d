"""`make bench-serve`: latency and throughput of the model server on loopback.

Starts the server (one uvicorn worker) and a bare FastAPI constant endpoint in their own
processes, and drives each from a third process (bench/serve_load.py, open loop).  Uses the
ml-100k NCF export (`configs/ml100k-ncf.yaml`'s model under `models/`) when it exists, else
builds an ML-100K-shaped model (and says so).  Writes bench/results/serve.json and serve.md.
Each load level runs $BENCH_SERVE_SECONDS seconds (default 8).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECONDS = float(os.environ.get("BENCH_SERVE_SECONDS", "8"))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(
    args: list[str], ready_url: str, cwd: Path = ROOT, env: dict | None = None
) -> subprocess.Popen:
    """`python *args` in `cwd`, once `ready_url` answers 200 (RuntimeError after 120 s)."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited: {proc.stderr.read()}")
        try:
            if httpx.get(ready_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{args} not ready within 120 s")


def _load(url: str, bodies: Path | None, rate: float, seconds: float = SECONDS) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "bench.serve_load",
        "--url",
        url,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
    ]
    if bodies is not None:
        cmd += ["--bodies", str(bodies)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _sustainable(result: dict) -> bool:
    # Sustained: every request answered OK, throughput keeps up, and no queue builds up.
    return (
        result["errors"] == 0
        and result["achieved_rps"] >= 0.97 * result["offered_rps"]
        and result["p99_ms"] <= 100.0
    )


def _max_rate(url: str, bodies: Path | None, start: float) -> tuple[float, list[dict]]:
    """Highest sustainable offered rate: double until it breaks, then bisect a few steps."""
    runs, good, bad, rate = [], 0.0, None, start
    while bad is None and rate <= 20000:
        r = _load(url, bodies, rate, seconds=4)
        runs.append(r)
        good, bad, rate = (rate, None, rate * 2) if _sustainable(r) else (good, rate, rate)
    for _ in range(3):
        if bad is None:
            break
        mid = round((good + bad) / 2)
        r = _load(url, bodies, mid, seconds=4)
        runs.append(r)
        good, bad = (mid, bad) if _sustainable(r) else (good, mid)
    return good, runs


def _bodies(tmp: Path, users: list, items: list, n_items: int, recommend: bool) -> Path:
    rng = np.random.default_rng(0)
    path = tmp / ("recommend.jsonl" if recommend else "predict.jsonl")
    with open(path, "w") as fh:
        for _ in range(500):
            user = users[rng.integers(len(users))]
            if recommend:
                body = {"user_id": user, "k": 10}
            else:
                body = {
                    "user_id": user,
                    "item_ids": [items[i] for i in rng.choice(len(items), n_items, replace=False)],
                }
            fh.write(json.dumps(body) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (`--help` describes it and its one setting)."""
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__)
    parser.parse_args(argv)  # no options yet: the load length is $BENCH_SERVE_SECONDS
    from peppercorn.config import load_config
    from peppercorn.model_repository import ModelRepository

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    name = load_config(ROOT / "configs" / "ml100k-ncf.yaml").model.name
    repo, source = ROOT / "models", f"trained ml-100k NCF export (models/{name})"
    if ModelRepository(str(repo)).latest(name) is None:
        name = "neumf"
        from bench.serve_model import build_ml100k_shaped

        repo = tmp / "models"
        build_ml100k_shaped(repo)
        source = "no trained export found: built an ML-100K-shaped NeuMF-like model (random)"
    exported = ModelRepository(str(repo)).version(name)
    source += f", version {exported.version}"
    served = exported.open()
    users = [served.users.raw(i) for i in range(1, len(served.users))]
    items = [served.items.raw(i) for i in range(1, len(served.items))]
    predict_bodies = _bodies(tmp, users, items, 100, recommend=False)
    recommend_bodies = _bodies(tmp, users, items, 0, recommend=True)
    config = tmp / "serve.yaml"
    config.write_text(f"paths:\n  model_repository: {repo}\nserving:\n  poll_interval_s: 5\n")
    port, bare_port = free_port(), free_port()
    base, bare = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    server = start_process(
        ["-m", "pipeline", "serve", "--config", str(config), "--port", str(port)]
        + ["--log-level", "warning"],
        f"{base}/readyz",
    )
    results: dict = {
        "model_source": source,
        "model_dir": exported.uri,
        "items_in_model": len(items),
        "seconds_per_rate": SECONDS,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    try:
        _load(f"{base}/predict", predict_bodies, 50, seconds=2)  # warm-up, not reported
        results["predict_100_items"] = {
            str(rate): _load(f"{base}/predict", predict_bodies, rate) for rate in (100, 200)
        }
        best, runs = _max_rate(f"{base}/predict", predict_bodies, 200)
        results["predict_max_sustainable_rps"] = best
        results["predict_search"] = runs
        results["recommend_all_items"] = {
            str(rate): _load(f"{base}/recommend", recommend_bodies, rate) for rate in (50, 100)
        }
        best_rec, rec_runs = _max_rate(f"{base}/recommend", recommend_bodies, 100)
        results["recommend_max_sustainable_rps"] = best_rec
        results["recommend_search"] = rec_runs
    finally:
        server.terminate()
        server.wait(timeout=30)
    bare_proc = start_process(
        ["-m", "bench.serve_bare", "--port", str(bare_port)], f"{bare}/readyz"
    )
    try:
        best_bare, bare_runs = _max_rate(f"{bare}/constant", predict_bodies, 400)
        results["bare_fastapi_max_sustainable_rps"] = best_bare
        results["bare_search"] = bare_runs
    finally:
        bare_proc.terminate()
        bare_proc.wait(timeout=30)
    results["ratio_predict_to_bare"] = round(best / best_bare, 3) if best_bare else None
    p99_200 = results["predict_100_items"]["200"]["p99_ms"]
    results["target_p99_le_20ms_at_200rps"] = p99_200 <= 20.0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "serve.md").write_text(_markdown(results))
    print(_markdown(results))


def _markdown(r: dict) -> str:
    lines = [
        "# Model server benchmark (`make bench-serve`)",
        "",
        f"Model: {r['model_source']} ({r['items_in_model']} items). Open-loop load from a "
        f"separate process on loopback, {r['seconds_per_rate']:.0f} s per rate; latency from each "
        f"request's scheduled start. Machine: {r['machine']['cpus']} CPUs.",
        "",
        "| endpoint | offered req/s | achieved req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, key in (
        ("/predict (100 items)", "predict_100_items"),
        ("/recommend (all items)", "recommend_all_items"),
    ):
        for rate, x in r[key].items():
            lines.append(
                f"| {name} | {rate} | {x['achieved_rps']} | {x['p50_ms']} | "
                f"{x['p95_ms']} | {x['p99_ms']} | {x['errors']} |"
            )
    lines += [
        "",
        f"- Highest sustainable rate (no errors, ≥97% of offered, p99 ≤ 100 ms): /predict "
        f"{r['predict_max_sustainable_rps']} req/s, /recommend "
        f"{r['recommend_max_sustainable_rps']} req/s, bare FastAPI constant endpoint "
        f"{r['bare_fastapi_max_sustainable_rps']} req/s; ratio /predict : bare = "
        f"{r['ratio_predict_to_bare']}.",
        f"- Target p99 ≤ 20 ms at 200 req/s: "
        f"{'met' if r['target_p99_le_20ms_at_200rps'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
