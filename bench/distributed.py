"""Data-parallel training speed: samples/s at 1 and 2 workers and the share spent syncing.

`python -m bench.distributed [--config configs/ml100k-ncf.yaml] [--epochs 2]` trains the
config's model (its features dataset must exist: `make etl CONFIG=...`) in one process, then
as a Spark barrier stage on local[2] with 2 workers at sync_every 1 (gradient all-reduce every
step) and 8 (parameter averaging). It also times one exchange of a gradient-sized message
through Spark's `allGather` and through the socket all-gather the trainer uses. Results go to
`bench/results/distributed.{json,md}` with the load average: this machine is shared, so the
figures only compare with runs under similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads: see peppercorn.blas

from peppercorn.config import load_config  # noqa: E402

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _exchange_latency(spark, payload_bytes: int, rounds: int) -> dict[str, float]:
    """Median seconds per all-gather of `payload_bytes` on 2 tasks: allGather vs sockets."""

    def task(_):
        import base64
        import statistics

        from pyspark import BarrierTaskContext

        from training.distributed.transport import StarAllGather

        ctx = BarrierTaskContext.get()
        blob = os.urandom(payload_bytes)
        text = base64.b64encode(blob).decode()
        times = {"spark_allgather": [], "socket_star": []}
        for _ in range(rounds):
            start = time.perf_counter()
            ctx.allGather(text)
            times["spark_allgather"].append(time.perf_counter() - start)
        star = StarAllGather(ctx)
        for _ in range(rounds * 20):
            start = time.perf_counter()
            star.all_gather(blob)
            times["socket_star"].append(time.perf_counter() - start)
        star.close()
        if ctx.partitionId() == 0:
            yield json.dumps({k: statistics.median(v) for k, v in times.items()})

    reply = spark.sparkContext.parallelize(range(2), 2).barrier().mapPartitions(task).collect()
    return json.loads(reply[0])


def _train(config: str, epochs: int, workers: int, sync_every: int, repository: str) -> dict:
    from pipeline.stages import train_and_export

    cfg = load_config(
        config,
        {
            "training.epochs": epochs, "training.refit": False,
            "training.early_stopping_patience": epochs,
            "training.distributed": {"workers": workers, "sync_every": sync_every},
            "paths.model_repository": repository, "spark.master": "local[2]",
        },
    )  # fmt: skip
    load_before, start = _load_average(), time.perf_counter()
    _, metrics = train_and_export(cfg)
    return {
        "workers": workers,
        "sync_every": sync_every if workers > 1 else None,
        "samples_per_sec": round(metrics["train_samples_per_sec"]),
        "train_seconds": round(metrics["train_seconds"], 2),
        "sync_share": round(metrics.get("distributed_sync_share", 0.0), 3),
        "hr@10": round(metrics["hr@10"], 4),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "load_before": load_before,
        "load_after": _load_average(),
    }


def _markdown(result: dict) -> str:
    lines = [
        "# Distributed training (issue 8)",
        "",
        f"{result['date']}, {result['machine']}; model `{result['model']}` on "
        f"`{result['dataset']}`, batch {result['batch_size']}, {result['epochs']} epochs, "
        f"Spark local[2]. `uptime` load averages (1/5/15 min) beside each run: the machine "
        "is shared, so compare only runs under similar load.",
        "",
        "| workers | sync_every | samples/s | sync share of step time | train s | HR@10 | "
        "wall s (incl. Spark) | load before | load after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['workers']} | {r['sync_every'] or '-'} | {r['samples_per_sec']:,} | "
            f"{r['sync_share']:.1%} | {r['train_seconds']} | {r['hr@10']} | "
            f"{r['wall_seconds']} | {r['load_before']} | {r['load_after']} |"
        )
    ex = result["exchange"]
    lines += [
        "",
        f"One all-gather of {result['exchange_bytes'] // 1024} KiB between 2 tasks (median): "
        f"Spark `BarrierTaskContext.allGather` {ex['spark_allgather'] * 1000:.1f} ms, "
        f"the socket star the trainer uses {ex['socket_star'] * 1000:.2f} ms.",
        "",
        "Sync share = (packing + all-gather wait + reduction) / (that + forward/backward + "
        "update), on rank 0. The 2 tasks share the machine's cores with the Spark JVM and the "
        "driver, so these figures show what synchronising costs, not a cluster's scaling. "
        "sync_every 8 averages parameters (optimizer state stays per task): fewer exchanges; "
        "its HR@10 after the same epochs is not the synchronous one's. Two epochs is far from "
        "convergence, so HR@10 here only shows that each setup learns.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed")
    parser.add_argument("--config", default="configs/ml100k-ncf.yaml")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="distributed")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as repository:
        for workers, sync_every in ((1, 1), (2, 1), (2, 8)):
            runs.append(_train(args.config, args.epochs, workers, sync_every, repository))
            print(json.dumps(runs[-1]), flush=True)
    from peppercorn.config import SparkConfig
    from peppercorn.spark import get_spark

    spark = get_spark(SparkConfig(master="local[2]", shuffle_partitions=2), "bench-exchange")
    exchange_bytes = 128 * 1024
    try:
        exchange = _exchange_latency(spark, exchange_bytes, rounds=5)
    finally:
        spark.stop()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "config": args.config, "dataset": cfg.dataset.name, "model": cfg.model.name,
        "batch_size": cfg.training.batch_size, "epochs": args.epochs, "runs": runs,
        "exchange_bytes": exchange_bytes, "exchange": exchange,
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{args.out}.md").write_text(_markdown(result))
    print(_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
