"""Engine benchmark: NCF-MLP training throughput of the graph engine against its peers.

Run with ``python -m bench.engine`` (``make bench-engine``).  In one process, on the same
batches from the same initial weights, with the same thread count, it trains:

- the engine, two spellings: ``engine-fused`` (``tf.fused_dense`` layers) and
  ``engine-plain`` (plain TF-1 ``tf.matmul(h, W) + b`` and ``tf.nn.relu``, fused by the
  Session's plan compiler as Grappler fuses them for TensorFlow);
- the peers: PyTorch with dense Adam, PyTorch with ``nn.Embedding(sparse=True)`` +
  ``SparseAdam``, and TensorFlow 2.x ``tf.compat.v1`` graph mode with Adam.

Each engine spelling must reach TARGETS times the best peer.  Repeats alternate the order of
the frameworks so that a noisy neighbour hurts all alike.  Writes ``engine.json``,
``engine.md`` and ``engine_profile.txt`` (cProfile of the plain spelling) under
``--out-dir``.  ``--device gpu`` adds the engine on the CuPy backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

__all__ = ["ENGINE_SPELLINGS", "PEERS", "TARGETS", "main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Per batch size: timed steps per repeat.  Sized so the whole run stays under ~5 minutes on 2
# cores with five frameworks.
DEFAULT_STEPS = {256: 400, 8192: 100}
# Engine samples/s over the best peer's, per batch size, that each spelling must reach.
TARGETS = {256: 2.0, 8192: 1.0}
ENGINE_SPELLINGS = ("engine-fused", "engine-plain")
PEERS = ("pytorch-dense", "pytorch-sparse", "tensorflow-v1")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-sizes", default="256,8192", help="comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=300, help="0 skips the profile")
    parser.add_argument(
        "--max-repeat-seconds", type=float, default=2.0, help="cap on one timed repeat"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip both PyTorch peers")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow peer")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        parser.error(f"--batch-sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if not args.batch_sizes or min(args.batch_sizes) < 5:
        parser.error("--batch-sizes: each size must be >= 5 (1 positive + 4 negatives)")
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads and --repeats must be >= 1 and --warmup >= 0")
    return args


def _steps_for(batch_size: int, override: int | None) -> int:
    if override is not None:
        return override
    if batch_size in DEFAULT_STEPS:
        return DEFAULT_STEPS[batch_size]
    # Roughly constant work per repeat: ~100k samples, at least 20 steps.
    return max(20, 100_000 // batch_size)


def _time_steps(step, batches, steps: int, sync, max_seconds: float) -> tuple[float, int]:
    """(samples/s, steps run) over up to `steps` steps, stopping early after `max_seconds`.

    The time cap keeps the whole benchmark short on an overloaded machine, where small
    multi-threaded BLAS calls can become a hundred times slower.
    """
    sync()
    start = time.perf_counter()
    deadline = start + max_seconds
    done = 0
    while done < steps:
        step(batches[done % len(batches)])
        done += 1
        if time.perf_counter() > deadline:
            break
    sync()
    elapsed = time.perf_counter() - start
    return done * len(batches[0].labels) / elapsed, done


def _no_sync() -> None:
    return None


def _trainers(args, weights) -> list[tuple[str, object, object]]:
    """(name, step, sync) for every framework this run measures."""
    from bench.engine_model import engine_trainer

    trainers = [
        ("engine-fused", engine_trainer(weights, fused=True), _no_sync),
        ("engine-plain", engine_trainer(weights, fused=False), _no_sync),
    ]
    if args.device == "gpu":
        step, sync = engine_trainer(weights, device="gpu", fused=False, with_sync=True)
        trainers.append(("engine-plain-gpu", step, sync))
    if not args.no_torch:
        from bench.engine_torch import torch_trainer

        trainers.append(("pytorch-dense", torch_trainer(weights, sparse=False), _no_sync))
        trainers.append(("pytorch-sparse", torch_trainer(weights, sparse=True), _no_sync))
    if not args.no_tf:
        from bench.engine_tf import tf_trainer

        trainers.append(("tensorflow-v1", tf_trainer(weights, args.threads), _no_sync))
    return trainers


def _ratios(result: dict, batch_size: int) -> None:
    """Add each engine spelling's ratio to the best peer, and the targets met, to `result`."""
    medians = {name: s["median"] for name, s in result["samples_per_sec"].items()}
    peers = {name: rate for name, rate in medians.items() if name in PEERS}
    if not peers:
        return
    best = max(peers, key=peers.get)
    result["best_peer"] = best
    result["ratio_vs_best_peer"] = {
        name: rate / peers[best] for name, rate in medians.items() if name not in PEERS
    }
    if batch_size in TARGETS:
        result["target_ratio"] = TARGETS[batch_size]
        result["meets_target"] = {
            name: result["ratio_vs_best_peer"][name] >= TARGETS[batch_size]
            for name in ENGINE_SPELLINGS
            if name in result["ratio_vs_best_peer"]
        }


def _bench_batch_size(args, batch_size: int, positives, seed: int) -> dict:
    import numpy as np

    from bench.engine_workload import initial_weights, make_batches

    rng = np.random.default_rng(seed)
    batches = make_batches(positives, batch_size, 32, rng)
    weights = initial_weights(np.random.default_rng(seed + 1))
    trainers = _trainers(args, weights)
    # Same weights, same first batch: the losses must agree, or the models differ.
    first_loss = {name: float(step(batches[0])) for name, step, _ in trainers}
    for _, step, sync in trainers:
        _time_steps(step, batches, args.warmup, sync, args.max_repeat_seconds)
    steps = _steps_for(batch_size, args.steps)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in trainers}
    steps_run: dict[str, list[int]] = {name: [] for name, _, _ in trainers}
    for repeat in range(args.repeats):
        order = trainers if repeat % 2 == 0 else trainers[::-1]
        for name, step, sync in order:
            rate, done = _time_steps(step, batches, steps, sync, args.max_repeat_seconds)
            samples[name].append(rate)
            steps_run[name].append(done)
    result = {
        "batch_size": batch_size,
        "timed_steps_per_repeat": steps,
        "steps_run": steps_run,
        "first_step_loss": first_loss,
        "samples_per_sec": {
            name: {"median": statistics.median(v), "min": min(v), "max": max(v), "all": v}
            for name, v in samples.items()
        },
    }
    _ratios(result, batch_size)
    return result


def _profile_engine(args, positives, out_path: Path) -> None:
    """cProfile of the plain TF-1 spelling at each batch size, into `out_path`."""
    import cProfile
    import io
    import pstats

    import numpy as np

    from bench.engine_model import engine_trainer
    from bench.engine_report import time_by_module
    from bench.engine_workload import initial_weights, make_batches

    text = io.StringIO()
    for batch_size in args.batch_sizes:
        batches = make_batches(positives, batch_size, 32, np.random.default_rng(7))
        step = engine_trainer(initial_weights(np.random.default_rng(8)), fused=False)
        _time_steps(step, batches, args.warmup, _no_sync, args.max_repeat_seconds)
        wanted = max(40, args.profile_steps * 256 // batch_size)
        profiler = cProfile.Profile()
        profiler.enable()
        _, done = _time_steps(step, batches, wanted, _no_sync, 2 * args.max_repeat_seconds)
        profiler.disable()
        stats = pstats.Stats(profiler, stream=text)
        text.write(f"=== cProfile of {done} engine-plain training steps at batch {batch_size}\n\n")
        text.write("Own time per source (seconds, share):\n")
        totals = time_by_module(stats)
        total = sum(t for _, t in totals) or 1.0
        for key, seconds in totals[:15]:
            text.write(f"  {seconds:8.3f}  {seconds / total:6.1%}  {key}\n")
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(15)
    out_path.write_text(text.getvalue())


def _optimizers(trainer_names) -> dict[str, str]:
    from bench.engine_model import engine_optimizer_name
    from bench.engine_tf import TF_OPTIMIZER
    from bench.engine_torch import TORCH_OPTIMIZERS

    engine = f"tf.train.{engine_optimizer_name()}"
    if engine.endswith("LazyAdamOptimizer"):
        engine += " (TF-1 contrib LazyAdam: only the embedding rows a batch touches move)"
    described = {
        "pytorch-dense": TORCH_OPTIMIZERS[False],
        "pytorch-sparse": TORCH_OPTIMIZERS[True],
        "tensorflow-v1": TF_OPTIMIZER,
    }
    return {name: described.get(name, engine) for name in trainer_names}


def _missing_peer(args) -> str | None:
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            return "PyTorch missing: pip install -e '.[bench]' (torch==2.13.0), or --no-torch"
    if not args.no_tf:
        from bench.engine_tf import tensorflow_version

        if tensorflow_version() is None:
            return "TensorFlow missing: pip install -e '.[bench]' (tensorflow-cpu), or --no-tf"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write engine.json / engine.md / engine_profile.txt."""
    args = _parse_args(argv)
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    from bench.engine_machine import limit_threads

    thread_control = limit_threads(args.threads, with_torch=not args.no_torch)
    problem = _missing_peer(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import numpy as np

    from bench.engine_machine import machine_info  # after limit_threads: numpy is loaded
    from bench.engine_report import markdown
    from bench.engine_workload import load_positives

    if args.device == "gpu":
        from bench.engine_model import gpu_available

        problem = gpu_available()
        if problem:
            print(f"--device gpu: {problem}", file=sys.stderr)
            return 2
    args.out_dir.mkdir(parents=True, exist_ok=True)
    positives, data_source = load_positives(np.random.default_rng(0))
    started = time.perf_counter()
    results = []
    for batch_size in args.batch_sizes:
        results.append(_bench_batch_size(args, batch_size, positives, seed=batch_size))
        medians = {k: round(v["median"]) for k, v in results[-1]["samples_per_sec"].items()}
        print(json.dumps(medians | {"batch": batch_size}), flush=True)
    if not args.no_tf:
        thread_control += f"; TensorFlow ConfigProto(intra_op={args.threads}, inter_op=1)"
    report = {
        "benchmark": "engine",
        "workload": "NCF-MLP, 943 users x 1682 items, embeddings 32+32, dense 64-32-16-8-1 "
        "ReLU, sigmoid cross-entropy, Adam lr 0.001, 4 negatives per positive",
        "data": data_source,
        "optimizers": _optimizers(results[0]["samples_per_sec"]),
        "threads": args.threads,
        "thread_control": thread_control,
        "targets_vs_best_peer": TARGETS,
        "repeats": args.repeats,
        "warmup_steps": args.warmup,
        "max_repeat_seconds": args.max_repeat_seconds,
        "load_average_at_start": load_at_start,
        "results": results,
    }
    if args.profile_steps > 0:
        _profile_engine(args, positives, args.out_dir / "engine_profile.txt")
    report["machine"] = machine_info()
    report["wall_seconds"] = time.perf_counter() - started
    (args.out_dir / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "engine.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
