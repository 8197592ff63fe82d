"""Engine benchmark: training throughput of the graph engine against PyTorch on the NCF-MLP.

Run with ``python -m bench.engine`` (``make bench-engine``).  Both frameworks train the same
model from the same initial weights on the same batches, in one process, with the same thread
count; repeats alternate between them so that a noisy neighbour hurts both alike.  Writes
``engine.json``, ``engine.md`` and ``engine_profile.txt`` (cProfile of the engine) under
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

__all__ = ["main"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Per batch size: timed steps per repeat.  Sized so the whole run stays under ~3 minutes on 2 cores.
DEFAULT_STEPS = {256: 600, 8192: 150}
TARGETS = {256: 2.0, 8192: 0.9}
OPTIMIZER_NOTE = (
    "the engine's Adam updates only the embedding rows a batch touches (TF-1 lazy/sparse "
    "semantics); torch.optim.Adam updates every parameter (dense embedding gradients). "
    "Both take the same first step, so the first-step losses below match. Engine dense layers "
    "are fused_dense ops (matmul + bias + ReLU in one op, as nn.Linear is one addmm)."
)  # engine / PyTorch throughput the engine must reach


def _limit_threads(threads: int, with_torch: bool) -> str:
    """Cap numpy's BLAS threads (and torch's pool) at `threads`; returns how it was done.

    The environment variables only work before numpy loads OpenBLAS; threadpoolctl only
    reaches libraries already loaded, so it runs after numpy (and torch) are imported.
    """
    how = []
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        how.append(f"OPENBLAS/OMP/MKL_NUM_THREADS={threads} before importing numpy")
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl limits

    if with_torch:
        try:
            import torch
        except ImportError:
            return "; ".join(how)  # main() reports the missing torch
        torch.set_num_threads(threads)
        how.append(f"torch.set_num_threads({threads})")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        how.append("threadpoolctl not installed")
    else:
        threadpool_limits(limits=threads)
        how.append(f"threadpoolctl.threadpool_limits({threads})")
    return "; ".join(how)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--batch-sizes", default="256,8192", help="comma-separated")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile-steps", type=int, default=300, help="0 skips the profile")
    parser.add_argument(
        "--max-repeat-seconds", type=float, default=3.0, help="cap on one timed repeat"
    )
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
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


def _trainers(args, weights):
    """(name, step, sync) for every framework this run measures; step returns nothing useful."""
    from bench.engine_model import engine_trainer

    trainers = [("engine-cpu", engine_trainer(weights, device="cpu"), lambda: None)]
    if args.device == "gpu":
        step, sync = engine_trainer(weights, device="gpu", with_sync=True)
        trainers.append(("engine-gpu", step, sync))
    if not args.no_torch:
        from bench.engine_torch import torch_trainer

        trainers.append(("pytorch-cpu", torch_trainer(weights), lambda: None))
    return trainers


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
    if "pytorch-cpu" in samples:
        torch_median = statistics.median(samples["pytorch-cpu"])
        result["ratio_vs_pytorch"] = {
            name: statistics.median(v) / torch_median
            for name, v in samples.items()
            if name != "pytorch-cpu"
        }
        if batch_size in TARGETS:
            ratio = result["ratio_vs_pytorch"]["engine-cpu"]
            result["target_ratio"] = TARGETS[batch_size]
            result["meets_target"] = ratio >= TARGETS[batch_size]
    return result


def _time_by_module(stats) -> list[tuple[str, float]]:
    """Own (tottime) seconds summed per source file: which engine part costs what."""
    totals: dict[str, float] = {}
    for (filename, _, func), (_, _, tottime, _, _) in stats.stats.items():
        if filename == "~":
            name = func.split("'")[1] if "'" in func else func.split()[-1].strip("<>")
            key = f"C builtins ({name})"
        elif "engine/" in filename:
            key = "engine/" + filename.rsplit("engine/", 1)[1]
        elif "site-packages/numpy" in filename:
            key = "numpy (Python-level wrappers)"
        else:
            key = filename.rsplit("/", 1)[-1]
        totals[key] = totals.get(key, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _profile_engine(args, positives, out_path: Path) -> None:
    import cProfile
    import io
    import pstats

    import numpy as np

    from bench.engine_model import engine_trainer
    from bench.engine_workload import initial_weights, make_batches

    text = io.StringIO()
    for batch_size in args.batch_sizes:
        batches = make_batches(positives, batch_size, 32, np.random.default_rng(7))
        step = engine_trainer(initial_weights(np.random.default_rng(8)), device="cpu")
        _time_steps(step, batches, args.warmup, lambda: None, args.max_repeat_seconds)
        wanted = max(40, args.profile_steps * 256 // batch_size)
        profiler = cProfile.Profile()
        profiler.enable()
        _, done = _time_steps(step, batches, wanted, lambda: None, 2 * args.max_repeat_seconds)
        profiler.disable()
        stats = pstats.Stats(profiler, stream=text)
        text.write(f"=== cProfile of {done} engine training steps at batch {batch_size}\n\n")
        text.write("Own time per source (seconds, share):\n")
        total = sum(t for _, t in _time_by_module(stats)) or 1.0
        for key, seconds in _time_by_module(stats)[:15]:
            text.write(f"  {seconds:8.3f}  {seconds / total:6.1%}  {key}\n")
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(15)
    out_path.write_text(text.getvalue())


def _markdown(report: dict) -> str:
    lines = [
        "# Engine benchmark: NCF-MLP training throughput (samples/s)",
        "",
        f"Workload: {report['workload']}",
        f"Data: {report['data']}. Threads: {report['threads']} ({report['thread_control']}).",
        f"Machine: {report['machine']['cpu_model']}, {report['machine']['usable_cpus']} CPUs, "
        f"numpy {report['machine']['numpy']}, torch {report['machine']['torch']}.",
        f"Optimizers: {OPTIMIZER_NOTE}",
        "Figures: median of repeats (min-max); repeats alternate between frameworks.",
        "",
    ]
    names = list(report["results"][0]["samples_per_sec"])
    lines.append("| batch | " + " | ".join(names) + " | engine/PyTorch | target | met |")
    lines.append("|---" * (len(names) + 4) + "|")
    for res in report["results"]:
        cells = [str(res["batch_size"])]
        for name in names:
            s = res["samples_per_sec"][name]
            cells.append(f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})")
        ratio = res.get("ratio_vs_pytorch", {}).get("engine-cpu")
        cells.append(f"{ratio:.2f}x" if ratio is not None else "-")
        cells.append(f">= {res['target_ratio']}x" if "target_ratio" in res else "-")
        cells.append({True: "yes", False: "NO"}.get(res.get("meets_target"), "-"))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "First-step loss (same weights, same batch; must agree across frameworks):", ""]
    for res in report["results"]:
        losses = ", ".join(f"{k} {v:.6f}" for k, v in res["first_step_loss"].items())
        lines.append(f"- batch {res['batch_size']}: {losses}")
    lines += ["", "Steps timed per repeat (fewer than asked: the repeat hit its time cap):", ""]
    for res in report["results"]:
        runs = ", ".join(f"{k} {v}" for k, v in res["steps_run"].items())
        lines.append(f"- batch {res['batch_size']} (asked {res['timed_steps_per_repeat']}): {runs}")
    load = report["machine"].get("load_average_1_5_15")
    if load:
        lines += ["", f"Load average at the end (1/5/15 min): {[round(x, 1) for x in load]}."]
        cpus = report["machine"].get("usable_cpus") or 1
        if load[0] > cpus:
            lines += [
                "",
                f"**Warning: load average {load[0]:.1f} on {cpus} CPUs: other processes shared "
                "the machine, so these figures (multi-threaded ones above all) are not "
                "representative. Re-run on a quiet machine.**",
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write engine.json / engine.md / engine_profile.txt."""
    args = _parse_args(argv)
    thread_control = _limit_threads(args.threads, with_torch=not args.no_torch)
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch missing: pip install torch==2.13.0, or --no-torch", file=sys.stderr)
            return 2
    import numpy as np

    from bench.engine_machine import machine_info
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
        print(json.dumps(results[-1]["samples_per_sec"] | {"batch": batch_size}), flush=True)
    report = {
        "benchmark": "engine",
        "workload": "NCF-MLP, 943 users x 1682 items, embeddings 32+32, dense 64-32-16-8-1 "
        "ReLU, sigmoid cross-entropy, Adam lr 0.001, 4 negatives per positive",
        "data": data_source,
        "optimizers": OPTIMIZER_NOTE,
        "threads": args.threads,
        "thread_control": thread_control,
        "repeats": args.repeats,
        "warmup_steps": args.warmup,
        "max_repeat_seconds": args.max_repeat_seconds,
        "machine": machine_info(),
        "results": results,
    }
    if args.profile_steps > 0:
        _profile_engine(args, positives, args.out_dir / "engine_profile.txt")
    report["wall_seconds"] = time.perf_counter() - started
    (args.out_dir / "engine.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out_dir / "engine.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
