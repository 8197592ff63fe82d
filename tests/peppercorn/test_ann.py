"""peppercorn.ann against an exact numpy oracle: search, bytes round trip, add, verify, threads."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from peppercorn import ann as ann_module
from peppercorn.ann import AnnIndex, AnnIndexError, set_search_threads


def oracle(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, n: int):
    """Exact top-n ids and inner products, best first."""
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    return ids[order], np.take_along_axis(scores, order, 1)


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """50 Gaussian clusters of different spreads; norms vary a little (log-normal 0.1)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((50, d))
    which = rng.integers(0, 50, n)
    spread = rng.uniform(0.5, 1.0, 50)[which, None]
    x = (centers[which] + spread * rng.standard_normal((n, d))) * rng.lognormal(0, 0.1, (n, 1))
    return x.astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(np.intersect1d(f, t).size for f, t in zip(found, truth, strict=True)) / truth.size


@pytest.fixture(scope="module")
def hnsw_case():
    vectors = clustered(5000, 16, seed=1)
    ids = np.arange(1, 5001, dtype=np.int64)
    return vectors, ids, AnnIndex.build(vectors, ids, exact_below=0)


def test_exact_matches_the_oracle_ids_and_scores():
    vectors, queries = gaussian(500, 8, 0), gaussian(20, 8, 1)
    ids = np.random.default_rng(2).permutation(2000)[:500] + 1
    index = AnnIndex.build(vectors, ids)
    assert index.kind == "exact" and index.ntotal == 500 and index.dim == 8
    for n in (1, 10, 600):  # 600 > ntotal: every item, n' = 500
        got_ids, got_scores = index.search(queries, n)
        want_ids, want_scores = oracle(vectors, ids, queries, n)
        assert got_ids.dtype == np.int64 and got_scores.dtype == np.float32
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_hnsw_recall_at_50_against_the_oracle(hnsw_case):
    vectors, ids, index = hnsw_case
    assert index.kind == "hnsw" and index.describe()["M"] == ann_module.HNSW_M
    queries = clustered(200, 16, seed=3)
    got, _ = index.search(queries, 50)
    want, _ = oracle(vectors, ids, queries, 50)
    assert recall(got, want) >= 0.95


def test_excluded_ids_are_left_out_inside_the_search(hnsw_case):
    # Rooms not live: thousands excluded by the index itself, no over-fetching.
    vectors, ids, hnsw = hnsw_case
    queries = clustered(100, 16, seed=5)
    excluded = np.random.default_rng(6).choice(ids, 3000, replace=False)
    rest = ~np.isin(ids, excluded)
    want, want_scores = oracle(vectors[rest], ids[rest], queries, 50)
    exact = AnnIndex.build(vectors, ids, exact_below=10**9)
    got, got_scores = exact.search(queries, 50, exclude=excluded)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)
    got, _ = hnsw.search(queries, 50, exclude=excluded)
    assert not np.isin(got, excluded).any() and recall(got, want) >= 0.95
    # A replaced id's stale node stays out alongside the excluded ones.
    fresh = AnnIndex.build(vectors[:500], ids[:500], exact_below=0)
    fresh.add(-vectors[:1], ids[:1])
    got, scores = fresh.search(vectors[:1], 500, exclude=ids[1:2])
    assert ids[1] not in got
    where = np.flatnonzero(got[0] == ids[0])
    assert where.size == 0 or scores[0, where[0]] < 0  # the new vector's, never the old one's


def test_hnsw_build_is_deterministic():
    vectors, ids = clustered(2000, 8, seed=4), np.arange(1, 2001)
    first = AnnIndex.build(vectors, ids, exact_below=0).to_bytes()
    assert AnnIndex.build(vectors, ids, exact_below=0).to_bytes() == first


@pytest.mark.parametrize("exact_below", [20_000, 0])
def test_bytes_round_trip_gives_identical_results(exact_below):
    vectors, queries = clustered(1500, 16, seed=5), clustered(30, 16, seed=6)
    ids = np.arange(1, 1501)
    index = AnnIndex.build(vectors, ids, exact_below=exact_below)
    loaded = AnnIndex.from_bytes(index.to_bytes(), dim=16, count=1500)
    assert loaded.describe() == index.describe()
    for a, b in zip(index.search(queries, 40), loaded.search(queries, 40), strict=True):
        np.testing.assert_array_equal(a, b)


def test_from_bytes_refuses_bad_bytes_and_mismatches():
    vectors, ids = gaussian(300, 8, 7), np.arange(1, 301)
    data = AnnIndex.build(vectors, ids).to_bytes()
    with pytest.raises(AnnIndexError, match="empty"):
        AnnIndex.from_bytes(b"", dim=8, count=300)
    for bad in (data[: len(data) // 2], data[:20], b"definitely not a faiss index" * 4):
        with pytest.raises(AnnIndexError, match="unreadable"):
            AnnIndex.from_bytes(bad, dim=8, count=300)
    with pytest.raises(AnnIndexError, match="dim 8, the version's vectors have 16"):
        AnnIndex.from_bytes(data, dim=16, count=300)
    with pytest.raises(AnnIndexError, match="holds 300 items, the version has 301"):
        AnnIndex.from_bytes(data, dim=8, count=301)
    l2 = faiss.IndexIDMap2(faiss.IndexFlatL2(8))
    l2.add_with_ids(vectors, ids)
    with pytest.raises(AnnIndexError, match="not inner product"):
        AnnIndex.from_bytes(faiss.serialize_index(l2).tobytes(), dim=8, count=300)
    bare = faiss.IndexFlatIP(8)
    with pytest.raises(AnnIndexError, match="not an IndexIDMap2"):
        AnnIndex.from_bytes(faiss.serialize_index(bare).tobytes(), dim=8, count=0)


@pytest.mark.parametrize("exact_below", [20_000, 0])
def test_added_item_is_found_without_a_rebuild(exact_below):
    vectors, ids = clustered(2000, 16, seed=8), np.arange(1, 2001)
    index = AnnIndex.build(vectors, ids, exact_below=exact_below)
    faiss_index = index._index  # white box: the same faiss object before and after
    new = 20 * gaussian(1, 16, 9)  # far outside the data: its own best match
    index.add(new, np.array([5000]))
    assert index._index is faiss_index and index.ntotal == 2001
    got_ids, got_scores = index.search(new, 5)
    assert got_ids[0, 0] == 5000
    np.testing.assert_allclose(got_scores[0, 0], float(new[0] @ new[0]), rtol=1e-5)
    everything = np.vstack([vectors, new])
    queries = clustered(20, 16, seed=10)
    want, _ = oracle(everything, np.append(ids, 5000), queries, 20)
    assert recall(index.search(queries, 20)[0], want) >= 0.95


@pytest.mark.parametrize("exact_below", [20_000, 0])
def test_replaced_item_never_returns_its_stale_vector(exact_below):
    vectors, ids = clustered(2000, 16, seed=11), np.arange(1, 2001)
    index = AnnIndex.build(vectors, ids, exact_below=exact_below)
    old = vectors[[41]] * 30  # item 42, scaled: the old vector's own best query
    index.add(vectors[[41]] * 30, np.array([42]))  # 42 now far out along its old direction
    new = -vectors[[41]] * 30
    index.add(new, np.array([42]))  # and replaced again, pointing the other way
    assert index.ntotal == 2000
    for ann in (index, AnnIndex.from_bytes(index.to_bytes(), dim=16, count=2000)):
        got_ids, got_scores = ann.search(new, 3)
        assert got_ids[0, 0] == 42
        np.testing.assert_allclose(got_scores[0, 0], float(new[0] @ new[0]), rtol=1e-5)
        got_ids, got_scores = ann.search(old, 100)
        assert 42 not in got_ids[0]  # neither the build-time nor the first replacement
        now = vectors.copy()
        now[41] = new[0]
        want, _ = oracle(now, ids, old, 100)
        assert recall(got_ids, want) >= 0.95


def test_add_refuses_wrong_dim_non_finite_and_duplicate_ids():
    index = AnnIndex.build(gaussian(100, 8, 12), np.arange(1, 101))
    with pytest.raises(AnnIndexError, match="dim 4, the index has dim 8"):
        index.add(gaussian(1, 4, 0), np.array([200]))
    nan = gaussian(1, 8, 0)
    nan[0, 3] = np.nan
    with pytest.raises(AnnIndexError, match="non-finite"):
        index.add(nan, np.array([200]))
    with pytest.raises(AnnIndexError, match="duplicates"):
        index.add(gaussian(2, 8, 0), np.array([200, 200]))
    with pytest.raises(AnnIndexError, match=">= 0"):
        index.add(gaussian(1, 8, 0), np.array([-1]))
    with pytest.raises(AnnIndexError, match="n must be >= 1"):
        index.search(gaussian(1, 8, 0), 0)
    assert index.ntotal == 100


def test_verify_passes_a_good_index_and_refuses_a_mismatched_one(hnsw_case):
    vectors, ids, index = hnsw_case
    assert index.verify(vectors, ids) >= 0.95
    other = clustered(5000, 16, seed=13)
    with pytest.raises(AnnIndexError, match="scores disagree"):
        AnnIndex.build(other, ids).verify(vectors, ids)
    with pytest.raises(AnnIndexError, match="holds 5000 items, expected 4999"):
        index.verify(vectors[1:], ids[1:])
    # Items missing from the index (zero vectors there) cost recall without wrong scores.
    small, small_ids = gaussian(500, 8, 14), np.arange(1, 501)
    hollow = small.copy()
    hollow[::3] = 0
    with pytest.raises(AnnIndexError, match=r"recall@50 is 0\.\d+ .* below 0.9"):
        AnnIndex.build(hollow, small_ids).verify(small, small_ids)


def test_searches_run_while_items_are_added(hnsw_case, monkeypatch):
    monkeypatch.setattr(ann_module, "_search_threads", None)
    set_search_threads(1)
    vectors, ids, _ = hnsw_case
    index = AnnIndex.build(vectors[:3000], ids[:3000], exact_below=0)
    queries = clustered(50, 16, seed=15)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher():
        try:
            while not stop.is_set():
                got_ids, got_scores = index.search(queries, 30)
                assert got_ids.shape == (50, 30) and (got_ids >= 1).all()
                assert (got_ids <= 3100).all() and (np.diff(got_scores, axis=1) <= 1e-5).all()
                assert all(np.unique(row).size == 30 for row in got_ids)
        except BaseException as err:  # reported to the main thread below
            errors.append(err)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    new = clustered(100, 16, seed=16)
    for i in range(100):  # half new items, half replacements of existing ones
        index.add(new[[i]], np.array([3001 + i if i % 2 else 1 + i]))
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert index.ntotal == 3050 and index.describe()["stale"] == 50
    with pytest.raises(ValueError):
        set_search_threads(0)


def test_the_default_kind_follows_size_and_norms():
    # Unit-norm vectors (cosine, the two-tower's) switch to HNSW at EXACT_BELOW_UNIT_NORM;
    # vectors of varying norm, on which HNSW loses recall, stay exact until EXACT_BELOW.
    from peppercorn.ann import EXACT_BELOW, EXACT_BELOW_UNIT_NORM

    assert EXACT_BELOW_UNIT_NORM < EXACT_BELOW
    rng = np.random.default_rng(0)
    n = EXACT_BELOW_UNIT_NORM
    varying = rng.standard_normal((n, 4)).astype(np.float32)
    unit = varying / np.linalg.norm(varying, axis=1, keepdims=True)
    ids = np.arange(1, n + 1)
    assert AnnIndex.build(varying, ids).kind == "exact"
    assert AnnIndex.build(unit[:-1], ids[:-1]).kind == "exact"
    assert AnnIndex.build(unit, ids).kind == "hnsw"
