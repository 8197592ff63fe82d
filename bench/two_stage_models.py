"""Platform-size versions for the two-stage benchmarks: a two-tower retrieval model and a ranker.

`build_platform_versions(repo)` publishes, into the model repository at `repo`, a `two_tower`
version and a ranker version (`neumf` by default) over the same user and item vocabularies
(`u0000001`.., `r000001`..; index 0 is `<unk>`), with seeded random weights: serving latency
does not depend on what the weights are, only on the shapes, so nothing is trained.

What makes the data realistic enough for latency:
- Items have content (one or two of 12 categories, 2-5 of 30 tags, mostly from their
  categories' own tags) and users a category affinity. The item tower's input is the small
  random id embedding (std 0.05) next to that 0/1 content, so the item vectors it gives are
  clustered by content rather than isotropic (and unit-norm, as the tower normalises them);
  an approximate index (HNSW, above `peppercorn.ann.EXACT_BELOW` items) behaves differently on
  clustered data (bench/ann.py measures both shapes). `describe_vectors` reports how clustered
  they are.
- Each user has about `seen_per_user` seen items drawn from a Zipf-like popularity (so a few
  items are seen by many users, as in a real log); the newest `history_length` of them are the
  two-tower's history input.

`python -m bench.two_stage_models REPO [--users N] [--items N] [--ranker NAME]` builds them
and prints the returned dict as JSON (the serving benchmark builds in such a child process,
so the build's memory is given back before the server starts).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from peppercorn.blas import default_to_one_blas_thread

default_to_one_blas_thread()  # before numpy loads: a shared machine's busy cores (peppercorn.blas)

import numpy as np  # noqa: E402

__all__ = ["build_platform_versions", "describe_vectors", "main"]

N_CATEGORIES = 12  # the category multi-hot has one more column: 0, the unknown category
N_TAGS = 30
_CHUNK_USERS = 100_000  # bounds the interaction draws' temporary memory


def _vocab(name: str, tokens: list[str]) -> dict:
    return {"name": name, "id_type": "string", "min_frequency": 1, "tokens": ["<unk>", *tokens]}


def _vocabs(users: int, items: int) -> dict[str, dict]:
    # category and tag vocabularies too, so that /v1/items can encode a new item's content.
    return {
        "user_id": _vocab("user_id", [f"u{i:07d}" for i in range(1, users + 1)]),
        "item_id": _vocab("item_id", [f"r{i:06d}" for i in range(1, items + 1)]),
        "category": _vocab("category", [f"cat{i:02d}" for i in range(1, N_CATEGORIES + 1)]),
        "tag": _vocab("tag", [f"tag{i:02d}" for i in range(1, N_TAGS + 1)]),
    }


def _features() -> tuple[dict, ...]:
    # As the features stage declares them: the two-tower reads its content columns from here.
    return (
        {"name": "category_affinity", "type": "vector", "table": "user", "vocab": "category",
         "dim": N_CATEGORIES + 1},
        {"name": "category_multi_hot", "type": "vector", "table": "item", "vocab": "category",
         "dim": N_CATEGORIES + 1},
        {"name": "tag_idx", "type": "categorical", "table": "item", "vocab": "tag",
         "vocab_size": N_TAGS + 1, "dim": 1, "multivalent": True},
    )  # fmt: skip


def _profiles(rng: np.random.Generator, users: int, items: int):
    """(user ProfileTable, item ProfileTable, each item's main category); row 0 all zeros."""
    from training.data import ProfileTable

    main = rng.integers(1, N_CATEGORIES + 1, items + 1)
    categories = np.zeros((items + 1, N_CATEGORIES + 1), np.float32)
    categories[np.arange(items + 1), main] = 1.0
    second = rng.random(items + 1) < 0.2  # a fifth of the items have a second category
    categories[np.flatnonzero(second), rng.integers(1, N_CATEGORIES + 1, second.sum())] = 1.0
    # Each category has 5 typical tags; an item takes 2-5 tags, four in five from its main
    # category's, so tags refine the category clusters instead of blurring them.
    typical = rng.integers(1, N_TAGS + 1, (N_CATEGORIES + 1, 5))
    tags = np.zeros((items + 1, N_TAGS + 1), np.float32)
    for slot in range(5):
        has = slot < rng.integers(2, 6, items + 1)
        own = rng.random(items + 1) < 0.8
        tag = np.where(own, typical[main, rng.integers(0, 5, items + 1)],
                       rng.integers(1, N_TAGS + 1, items + 1))  # fmt: skip
        tags[np.flatnonzero(has), tag[has]] = 1.0
    categories[0], tags[0] = 0.0, 0.0
    affinity = np.zeros((users + 1, N_CATEGORIES + 1), np.float32)
    affinity[1:, 1:] = rng.dirichlet(np.full(N_CATEGORIES, 0.3), users).astype(np.float32)
    user = ProfileTable(vector={"category_affinity": affinity})
    item = ProfileTable(vector={"category_multi_hot": categories}, multi_hot={"tag_idx": tags})
    return user, item


def _interactions(rng: np.random.Generator, users: int, items: int, per_user: int, length: int):
    """Seen CSR (sorted, int64 indptr / int32 indices), history CSR (newest first, at most
    `length` per user) and each item's count; about `per_user` distinct items per user."""
    # Zipf-like popularity over a random order of the items.
    weights = 1.0 / np.arange(1, items + 1) ** 0.8
    cdf = np.cumsum(weights[rng.permutation(items)])
    cdf /= cdf[-1]
    lo, hi = max(1, per_user // 2), max(1, per_user + per_user // 2)
    seen_rows, hist_rows, seen_n, hist_n = [], [], [], []
    for start in range(0, users, _CHUNK_USERS):
        n = min(_CHUNK_USERS, users - start)
        count = rng.integers(lo, hi + 1, n)
        # Column 0 is the newest draw; a repeat of an item keeps its newest place only.
        drawn = (np.searchsorted(cdf, rng.random((n, hi))) + 1).astype(np.int32)
        drawn[np.arange(hi)[None, :] >= count[:, None]] = 0
        order = np.argsort(drawn, axis=1, kind="stable")
        ordered = np.take_along_axis(drawn, order, axis=1)
        keep = ordered > 0
        keep[:, 1:] &= ordered[:, 1:] != ordered[:, :-1]
        seen_rows.append(ordered[keep])
        seen_n.append(keep.sum(axis=1))
        kept = np.zeros_like(keep)
        np.put_along_axis(kept, order, keep, axis=1)  # back to time order
        kept &= np.cumsum(kept, axis=1) <= length
        hist_rows.append(drawn[kept])
        hist_n.append(kept.sum(axis=1))

    def csr(rows: list, counts: list) -> tuple[np.ndarray, np.ndarray]:
        indptr = np.zeros(users + 2, np.int64)  # row 0: the unknown user, empty
        indptr[2:] = np.cumsum(np.concatenate(counts))
        return indptr, np.concatenate(rows).astype(np.int32)

    seen = csr(seen_rows, seen_n)
    return seen, csr(hist_rows, hist_n), np.bincount(seen[1], minlength=items + 1)


def describe_vectors(vectors: np.ndarray, categories: np.ndarray) -> dict:
    """How clustered unit item vectors are: the share of their spread that the main
    category's centroid explains (0: isotropic noise, 1: every item at its centroid)."""
    x = vectors[1:].astype(np.float64)
    main = categories[1:].argmax(axis=1)
    centroids = np.zeros((categories.shape[1], x.shape[1]))
    np.add.at(centroids, main, x)
    centroids /= np.maximum(np.bincount(main, minlength=categories.shape[1]), 1)[:, None]
    total = ((x - x.mean(axis=0)) ** 2).sum()
    within = ((x - centroids[main]) ** 2).sum()
    return {"explained_by_category": round(float(1.0 - within / total), 3)}


def _publish(repository: Path, name: str, ctx, contents, seed: int):
    import engine as tf
    from training.export import publish_model
    from training.models import build_model

    model = build_model(name, {}, ctx, l2=0.0, seed=seed)
    session = tf.Session(model.graph)
    session.initialize_variables()
    contents.feature_spec = {
        "model": name,
        "params": {**model.params, "inputs": model.inputs},
        "features": list(ctx.features),
        "n_users": ctx.n_users,
        "n_items": ctx.n_items,
        "synthetic": "bench.two_stage_models: seeded random weights, not trained",
        **({"history_length": model.history_length} if model.has_history else {}),
    }
    if not model.has_history:
        contents.history_indptr = contents.history_indices = None
    return publish_model(repository, name, session, model, contents)


def _size_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def build_platform_versions(
    repository: Path,
    users: int = 1_000_000,
    items: int = 100_000,
    *,
    ranker: str = "neumf",
    history_length: int = 20,
    seen_per_user: int = 20,
    seed: int = 0,
) -> dict:
    """Publish a two-tower and a `ranker` version with random weights into `repository`.

    Returns {"retrieval": ("two_tower", version), "ranker": (name, version),
    "build_seconds", "sizes_mb": {name: MB on disk}, "item_vectors": describe_vectors(...)}.
    """
    from peppercorn.version_assets import VersionContents
    from training.export import popular_items
    from training.models import BuildContext

    start = time.perf_counter()
    repository = Path(repository)
    rng = np.random.default_rng(seed)
    user_profile, item_profile = _profiles(rng, users, items)
    (seen_ptr, seen_idx), (hist_ptr, hist_idx), counts = _interactions(
        rng, users, items, seen_per_user, history_length
    )
    popular = popular_items(counts)
    vocabs = _vocabs(users, items)
    ctx = BuildContext(
        users + 1, items + 1, user_profile, item_profile, _features(), history_length
    )
    out: dict = {"sizes_mb": {}}
    for role, name in (("retrieval", "two_tower"), ("ranker", ranker)):
        contents = VersionContents(
            vocabs=vocabs,
            popular_idx=np.asarray(popular["item_idx"], np.int32),
            popular_count=np.asarray(popular["count"], np.int64),
            seen_indptr=seen_ptr,
            seen_indices=seen_idx,
            history_indptr=hist_ptr,
            history_indices=hist_idx,
        )
        exported = _publish(repository, name, ctx, contents, seed)
        out[role] = (name, exported.version)
        out["sizes_mb"][name] = _size_mb(repository / name / str(exported.version))
        if contents.retrieval is not None:
            out["item_vectors"] = {
                **describe_vectors(
                    contents.retrieval.item_vectors, item_profile.vector["category_multi_hot"]
                ),
                "index": contents.retrieval.meta["index"],
            }
    out["build_seconds"] = round(time.perf_counter() - start, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    """Build into the repository named on the command line; print the result as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.two_stage_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("repository", type=Path)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--ranker", default="neumf")
    p.add_argument("--history-length", type=int, default=20)
    p.add_argument("--seen-per-user", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    built = build_platform_versions(
        a.repository, a.users, a.items, ranker=a.ranker, history_length=a.history_length,
        seen_per_user=a.seen_per_user, seed=a.seed,
    )  # fmt: skip
    built["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(built))


if __name__ == "__main__":
    main()
