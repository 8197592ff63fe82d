"""ANN benchmark for the retrieval stage: recall@200, build time, size and single-query latency.

`python -m bench.ann [--items 100000] [--queries 1000] [--dims 32 64]` builds, for each dim and
two data shapes (i.i.d. Gaussian, the worst case; a mixture of 200 Gaussian clusters with
log-normal norms, closer to trained embeddings), exact search (numpy matmul + argpartition,
faiss IndexFlatIP), faiss HNSW (M 16/32, efConstruction 200, efSearch 200/256/400/800) and
faiss IVF-Flat (nlist 1024, nprobe 16/32/64); at `--extra-dims` (32) also hnswlib HNSW (when
installed) and faiss HNSW on the lifted vectors (inner product reduced to nearest neighbour).
Every search is one query on one thread, as the server scores one request per core; recall@200
is against exact numpy search. Flat and HNSW go through `peppercorn.ann.AnnIndex` (its checks
and lock included), the others are called directly. Writes `bench/results/ann.{json,md}` with
the pick: the fastest faiss setting with recall@200 >= 0.95 on every data set. About ten
minutes on two shared cores; `--render` rewrites the md from the json after a text edit.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import tempfile
import time
from pathlib import Path

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # one BLAS/OpenMP thread, set before numpy and faiss load

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from bench.engine_machine import cpu_model  # noqa: E402
from peppercorn.ann import AnnIndex  # noqa: E402

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
K = 200
TARGET_RECALL = 0.95
HNSW_M = (16, 32)
EF_SEARCH = (200, 256, 400, 800)
NLIST = 1024
NPROBE = (16, 32, 64)


def make_data(shape: str, items: int, queries: int, dim: int, seed: int = 0):
    """Item and query vectors (float32) drawn from the same distribution."""
    rng = np.random.default_rng(seed)
    total = items + queries
    if shape == "gaussian":
        x = rng.standard_normal((total, dim))
    else:  # 200 clusters of Zipf-like sizes and different spreads, log-normal norms
        centers = rng.standard_normal((200, dim))
        spread = rng.uniform(0.2, 0.6, 200)
        weights = 1.0 / np.arange(1, 201) ** 0.8
        which = rng.choice(200, total, p=weights / weights.sum())
        x = centers[which] + spread[which, None] * rng.standard_normal((total, dim))
        x *= rng.lognormal(0.0, 0.3, (total, 1))
        if shape == "unit":  # the two-tower's vectors: its towers end in an L2 normalisation
            x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    return x[:items], x[items:]


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the exact top-k inner products, best first (the oracle)."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 50):
        scores = queries[s : s + 50] @ items.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s : s + 50] = np.take_along_axis(part, order, 1)
    return out


def timed(search, queries: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run `search(one_query[1, d]) -> ids[1, K]` per query; ids and p50/p99 latency (ms)."""
    for q in queries[:20]:  # warm caches
        search(q[None])
    found, ms = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(search(q[None]))
        ms.append((time.perf_counter() - start) * 1e3)
    p50, p99 = np.percentile(ms, [50, 99])
    return np.vstack(found), {"p50_ms": round(float(p50), 3), "p99_ms": round(float(p99), 3)}


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(np.intersect1d(f, t).size for f, t in zip(found, truth, strict=True))
    return round(hits / truth.size, 4)


def _row(method: str, params: str, found, truth, latency, build_s, size_bytes, **extra) -> dict:
    row = {"method": method, "params": params, "recall": recall(found, truth)}
    row |= {"build_s": round(build_s, 2), "size_mb": round(size_bytes / 2**20, 1), **latency}
    print(f"  {method:16s} {params:28s} {row}", flush=True)
    return row | extra


def _ann_rows(items, queries, truth, method, **build) -> list[dict]:
    ids = np.arange(1, len(items) + 1)
    start = time.perf_counter()
    ann = AnnIndex.build(items, ids, **build)
    build_s = time.perf_counter() - start
    data = ann.to_bytes()
    start = time.perf_counter()
    loaded = AnnIndex.from_bytes(data, dim=items.shape[1], count=len(items))
    load_s = time.perf_counter() - start
    verify_recall = loaded.verify(items, ids, min_recall=0.0)  # recorded, not enforced here
    start = time.perf_counter()
    loaded.add(queries[:1], np.array([len(items) + 1]))
    serving = {"load_s": round(load_s, 3), "verify_recall": round(verify_recall, 3)}
    serving["add_ms"] = round((time.perf_counter() - start) * 1e3, 2)
    rows = []
    for ef in EF_SEARCH if ann.kind == "hnsw" else (None,):
        found, lat = timed(lambda q, ef=ef: ann.search(q, K, ef_search=ef)[0] - 1, queries)
        params = f"M={build['hnsw_m']} efC=200 efS={ef}" if ef else "-"
        rows.append(_row(method, params, found, truth, lat, build_s, len(data), **serving))
    return rows


def _numpy_row(items, queries, truth) -> dict:
    def search(q):
        scores = (items @ q[0])[None]
        part = np.argpartition(-scores, K - 1, axis=1)[:, :K]
        return np.take_along_axis(part, np.argsort(-np.take_along_axis(scores, part, 1)), 1)

    found, lat = timed(search, queries)
    return _row("numpy exact", "matmul+argpartition", found, truth, lat, 0.0, items.nbytes)


def _ivf_rows(items, queries, truth) -> list[dict]:
    dim = items.shape[1]
    start = time.perf_counter()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, NLIST, faiss.METRIC_INNER_PRODUCT)
    index.train(items)
    index.add(items)
    build_s = time.perf_counter() - start
    size = faiss.serialize_index(index).size
    rows = []
    for nprobe in NPROBE:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        found, lat = timed(lambda q, p=params: index.search(q, K, params=p)[1], queries)
        setting = f"nlist={NLIST} nprobe={nprobe}"
        rows.append(_row("faiss IVF-Flat", setting, found, truth, lat, build_s, size))
    return rows


def _hnswlib_rows(items, queries, truth) -> list[dict]:
    import hnswlib

    start = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=items.shape[1])
    index.init_index(max_elements=len(items), M=16, ef_construction=200, random_seed=0)
    index.add_items(items, np.arange(len(items)), num_threads=1)
    build_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        index.save_index(f"{tmp}/index.bin")
        size = os.path.getsize(f"{tmp}/index.bin")
    rows = []
    for ef in EF_SEARCH:
        index.set_ef(ef)
        found, lat = timed(lambda q: index.knn_query(q, k=K, num_threads=1)[0], queries)
        rows.append(_row("hnswlib", f"M=16 efC=200 ef={ef}", found, truth, lat, build_s, size))
    return rows


def _augmented_rows(items, queries, truth) -> list[dict]:
    """HNSW on the MIPS-to-nearest-neighbour reduction: x -> (x, sqrt(R^2 - |x|^2)), q -> (q, 0).

    All items then have norm R, so inner-product order equals Euclidean order and the graph is
    built in a metric space; the query's inner products are unchanged.
    """
    norms = np.linalg.norm(items, axis=1)
    extra = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0.0))
    lifted = np.hstack([items, extra[:, None]]).astype(np.float32)
    lifted_queries = np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(lifted.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    index.add(lifted)
    build_s = time.perf_counter() - start
    size = faiss.serialize_index(index).size
    rows = []
    for ef in EF_SEARCH[-2:]:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        found, lat = timed(lambda q, p=params: index.search(q, K, params=p)[1], lifted_queries)
        setting = f"M=32 efC=200 efS={ef}"
        rows.append(_row("faiss HNSW lifted", setting, found, truth, lat, build_s, size))
    return rows


def run_dataset(
    shape: str, dim: int, items: int, queries: int, with_hnswlib: bool, lifted: bool
) -> list[dict]:
    x, q = make_data(shape, items, queries, dim)
    truth = exact_top(x, q, K)
    print(f"{shape} d={dim}: {items} items, {queries} queries", flush=True)
    rows = [_numpy_row(x, q, truth)]
    rows += _ann_rows(x, q, truth, "faiss Flat (IP)", exact_below=items + 1)
    for m in HNSW_M:
        rows += _ann_rows(x, q, truth, "faiss HNSW", exact_below=0, hnsw_m=m, ef_construction=200)
    if lifted:
        rows += _augmented_rows(x, q, truth)
    rows += _ivf_rows(x, q, truth)
    if with_hnswlib:
        rows += _hnswlib_rows(x, q, truth)
    return [{"shape": shape, "dim": dim, **r} for r in rows]


def _sets(rows: list[dict]) -> list[tuple[str, int]]:
    return list(dict.fromkeys((r["shape"], r["dim"]) for r in rows))


def pick(rows: list[dict], shapes: tuple[str, ...] | None = None, prefix: str = "faiss") -> dict:
    """The setting of a method starting with `prefix` with recall >= target on every data set
    (of `shapes`, default all) and the lowest mean p50."""
    rows = [r for r in rows if shapes is None or r["shape"] in shapes]
    by_setting: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["method"].startswith(prefix):
            by_setting.setdefault((r["method"], r["params"]), []).append(r)
    ok = {
        key: rs
        for key, rs in by_setting.items()
        if len(rs) == len(_sets(rows)) and min(r["recall"] for r in rs) >= TARGET_RECALL
    }
    method, params = min(ok, key=lambda key: np.mean([r["p50_ms"] for r in ok[key]]))
    chosen = ok[(method, params)]
    return {
        "method": method,
        "params": params,
        "min_recall": min(r["recall"] for r in chosen),
        "mean_p50_ms": round(float(np.mean([r["p50_ms"] for r in chosen])), 3),
    }


def fastest_hnsw(rows: list[dict]) -> list[dict]:
    """Per data set: the fastest faiss HNSW setting reaching the target, or the best recall."""
    out = []
    for shape, dim in _sets(rows):
        here = [r for r in rows if (r["shape"], r["dim"]) == (shape, dim)]
        flat = next(r for r in here if r["method"].startswith("faiss Flat"))
        hnsw = [r for r in here if r["method"] == "faiss HNSW"]
        ok = [r for r in hnsw if r["recall"] >= TARGET_RECALL]
        best = min(ok, key=lambda r: r["p50_ms"]) if ok else max(hnsw, key=lambda r: r["recall"])
        out.append({"shape": shape, "dim": dim, "reaches": bool(ok), "flat_p50_ms": flat["p50_ms"]})
        out[-1] |= {k: best[k] for k in ("params", "recall", "p50_ms", "build_s", "size_mb")}
    return out


def _unit_pick(result: dict) -> list[str]:
    unit = result.get("pick_unit")
    if not unit:
        return []
    picked = unit["method"] + ("" if unit["params"] == "-" else f" {unit['params']}")
    return [
        f"**Pick for unit-norm vectors (the two-tower's, `unit` rows): {picked}**, the fastest "
        f"HNSW setting with recall@{K} >= {TARGET_RECALL} on the unit data sets (lowest "
        f"{unit['min_recall']}, mean p50 {unit['mean_p50_ms']} ms).",
        "",
    ]


def _markdown(result: dict) -> str:
    m = result["machine"]
    choice = result["pick"]
    picked = choice["method"] + ("" if choice["params"] == "-" else f" {choice['params']}")
    lines = [
        "# ANN index benchmark (retrieval stage)",
        "",
        f"`python -m bench.ann`, {result['date']}. Machine: {m['cpu']}, {m['cores']} cores "
        f"(shared); load average before/after {m['load_before']} / {m['load_after']}; "
        f"faiss {m['faiss']}, numpy {m['numpy']}. Wall time {result['seconds']:.0f} s.",
        "",
        f"{result['items']:,} items, {result['queries']:,} queries drawn like the items; "
        f"recall@{K} against exact numpy inner-product search. Every search is one query on "
        "one thread (OMP/BLAS threads = 1), as the server scores one request per core; "
        "latency p50/p99 over the queries. Flat and HNSW go through `peppercorn.ann.AnnIndex` "
        "(input checks and its lock included) and are built as it builds them (HNSW on one "
        "thread, so the graph depends on the input alone); the others are called directly. "
        "Size is the serialized index (faiss `serialize_index`; hnswlib `save_index`). "
        "load s / verify / add ms: `AnnIndex.from_bytes`, the recall@50 that `verify()` "
        "measures (16 item vectors as queries, the index's default efSearch; serving refuses "
        "an index below 0.9) and `add()` of one new item to the loaded index.",
        "",
        f"**Pick at {result['items']:,} items: {picked}**, the "
        f"fastest faiss setting (mean p50 {choice['mean_p50_ms']} ms over the data sets) whose "
        f"recall@{K} is >= {TARGET_RECALL} on every data set (lowest {choice['min_recall']}).",
        "",
        *_unit_pick(result),
        f"Fastest faiss HNSW setting with recall@{K} >= {TARGET_RECALL}, per data set, against "
        "exact search (where none reaches it: the best recall measured):",
        "",
        "| data | HNSW setting | recall | p50 ms | build s | size MB | Flat p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in result["fastest_hnsw"]:
        setting = b["params"] if b["reaches"] else f"none (best: {b['params']})"
        lines.append(
            f"| {b['shape']} d={b['dim']} | {setting} | {b['recall']:.4f} | {b['p50_ms']} | "
            f"{b['build_s']} | {b['size_mb']} | {b['flat_p50_ms']} |"
        )
    lines += ["", "## Decision", "", *[f"- {n}" for n in result["decision"]], ""]
    for shape, dim in _sets(result["rows"]):
        lines += [
            f"## {shape}, d = {dim}",
            "",
            f"| method | params | recall@{K} | build s | size MB | p50 ms | p99 ms | "
            "load s | verify | add ms |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result["rows"]:
            if (r["shape"], r["dim"]) == (shape, dim):
                extra = [str(r.get(k, "")) for k in ("load_s", "verify_recall", "add_ms")]
                lines.append(
                    f"| {r['method']} | {r['params']} | {r['recall']:.4f} | {r['build_s']} | "
                    f"{r['size_mb']} | {r['p50_ms']} | {r['p99_ms']} | " + " | ".join(extra) + " |"
                )
        lines.append("")
    lines += ["## Notes", "", *[f"- {n}" for n in result["notes"]], ""]
    return "\n".join(lines)


DECISION = [
    "The retrieval model's vectors are unit-norm (its towers end in an L2 normalisation), so "
    "its inner products are cosines, a metric on the sphere, and HNSW works on them: on the "
    "`unit` rows (the clustered data normalised) every HNSW setting has recall@200 >= 0.985, "
    "at 0.3-0.6 ms a query against 0.7 ms (d 32) and 1.8 ms (d 64) for exact search. "
    "`AnnIndex.build` therefore uses HNSW (M = 32, efConstruction = 200, efSearch = "
    "max(256, n)) for unit-norm vectors from `EXACT_BELOW_UNIT_NORM` = 20,000 items; below "
    "that exact search costs well under a millisecond.",
    "IVF-Flat (nlist 1024, nprobe 64) is faster still on the unit data (0.16-0.18 ms, recall "
    "0.994), but its coarse centroids are trained on the catalogue at export; a live "
    "catalogue whose rooms come and go within the day drifts away from them, while HNSW "
    "links every room added live into its graph. The 0.2-0.4 ms it would save is small next "
    "to a request's other stages (bench/results/serve_two_stage.md), so HNSW stays.",
    "Vectors of varying norm are another matter: HNSW with the inner-product metric is good "
    "on the Gaussian vectors but not on the clustered ones with varying norms, whatever M and "
    "efSearch (inner product is not a metric; the graph links nodes to the long vectors and "
    "the search misses the rest); hnswlib behaves the same. For such vectors exact search "
    "is the default up to `EXACT_BELOW` = 200,000 items, the only faiss setting with "
    "recall@200 >= 0.95 on every varying-norm data set; above it HNSW with efSearch 400. "
    "`verify()` (item vectors as queries, recall@50) is a check against corrupt or "
    "mismatched indexes, not a recall@200 guarantee.",
    "The usual reduction of inner-product search to nearest-neighbour search (lift every item "
    "to norm R with an extra coordinate, 'faiss HNSW lifted') recovers the clustered "
    "varying-norm recall but loses the Gaussian one.",
    "Library: hnswlib answers about twice as fast as faiss HNSW at the same efSearch and "
    "recall, but faiss also gives the exact index, IVF and the binary format in one "
    "dependency, so faiss stays.",
]


def render(out_dir: Path) -> None:
    """Rewrite ann.md from ann.json (after editing the text, without re-measuring)."""
    result = json.loads((out_dir / "ann.json").read_text())
    result["decision"] = DECISION
    (out_dir / "ann.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "ann.md").write_text(_markdown(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64])
    parser.add_argument(
        "--extra-dims",
        type=int,
        nargs="*",
        default=[32],
        help="dims that also get the comparison columns (hnswlib, lifted HNSW)",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite ann.md from ann.json")
    parser.add_argument("--shapes", nargs="+", default=["gaussian", "clustered", "unit"])
    parser.add_argument(
        "--merge", action="store_true", help="add these shapes' rows to the existing ann.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        render(args.out_dir)
        return
    try:
        hnswlib_version = importlib.metadata.version("hnswlib")
    except importlib.metadata.PackageNotFoundError:
        hnswlib_version = None
    faiss.omp_set_num_threads(1)
    load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    rows = []
    for dim in args.dims:
        extra = dim in args.extra_dims
        for shape in args.shapes:
            rows += run_dataset(
                shape, dim, args.items, args.queries, extra and hnswlib_version is not None, extra
            )
    hnswlib_note = (
        f"hnswlib {hnswlib_version} (M 16, space 'ip', one thread) is a comparison column "
        "only: installed by hand in the venv (`pip install hnswlib==0.8.0`), not a dependency "
        "in pyproject.toml."
        if hnswlib_version
        else "hnswlib is not installed (`pip install hnswlib==0.8.0`), so it has no column."
    )
    previous = json.loads((args.out_dir / "ann.json").read_text()) if args.merge else None
    if previous is not None:  # keep the other shapes' rows and their run's facts
        rows = [r for r in previous["rows"] if r["shape"] not in args.shapes] + rows
    result = {
        "date": datetime.date.today().isoformat(),
        "items": args.items,
        "queries": args.queries,
        "k": K,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "faiss": faiss.__version__,
            "numpy": np.__version__,
        },
        "rows": rows,
        "pick": pick(rows),
        # AnnIndex's kinds (Flat, HNSW) on the two-tower's unit-norm vectors.
        "pick_unit": pick(rows, ("unit",), "faiss HNSW")
        if any(r["shape"] == "unit" for r in rows)
        else None,
        "fastest_hnsw": fastest_hnsw(rows),
        "decision": DECISION,
        "notes": [
            *(
                [
                    f"Rows of {sorted({r['shape'] for r in previous['rows']} - set(args.shapes))} "
                    f"come from the run of {previous['date']} (wall {previous['seconds']} s, load "
                    f"{previous['machine']['load_before']}); this run measured {args.shapes}."
                ]
                if previous
                else []
            ),
            hnswlib_note,
            f"Comparison columns (hnswlib, lifted HNSW) only at d = {args.extra_dims}, to keep "
            "the run near ten minutes on two cores.",
            "IVF-Flat trains k-means on the items with one thread; its build includes that.",
            "The machine is shared with other engineers' tests: latencies compare within "
            "one run, not across runs under another load; p99 shows their interference.",
        ],
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "ann.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "ann.md").write_text(_markdown(result))
    print(json.dumps(result["pick"]))


if __name__ == "__main__":
    main()
