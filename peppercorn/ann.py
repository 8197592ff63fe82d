"""Nearest-neighbour (inner-product) search over item vectors for retrieval, built on faiss.

Below `EXACT_BELOW` items an exact ``IndexFlatIP`` answers, above it an HNSW graph
(``IndexHNSWFlat``, inner-product metric); both inside an ``IndexIDMap2`` so the item indices
travel with the index, stored with faiss's own ``serialize_index`` (no pickle). Serving loads it
with `AnnIndex.from_bytes` and checks it with `AnnIndex.verify` before answering with it.

Why exact up to 200k (bench/results/ann.md, 100k items, d 32/64, one thread): exact search is
the only faiss setting with recall@200 >= 0.95 on both Gaussian and clustered (varying-norm)
vectors, at 0.7 / 1.9 ms per query, and the HNSW settings that reach 0.95 on the Gaussian data
alone are no faster. HNSW on inner products loses the clustered, varying-norm data (about 0.6
recall@200 at efSearch 800); exact search costs grow linearly, so HNSW serves larger catalogues.

`add` joins new items without a rebuild, and an id already present is replaced. The exact
index removes the old row. HNSW cannot remove a graph node, so the old node stays as a stale
entry that a faiss ``IDSelector`` excludes inside the search (no over-fetching); on load an id
present several times is live at its last-added entry.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import faiss
import numpy as np

__all__ = [
    "EXACT_BELOW",
    "EXACT_BELOW_UNIT_NORM",
    "AnnIndex",
    "AnnIndexError",
    "set_search_threads",
]

EXACT_BELOW = 200_000
# Unit-norm vectors (the two-tower's: inner product is cosine, a metric on the sphere) do not
# have the varying-norm problem below, and HNSW reaches the recall target on them (the `unit`
# rows of bench/results/ann.md), so they switch to it at a tenth of the size.
EXACT_BELOW_UNIT_NORM = 20_000
EF_SEARCH_UNIT_NORM = 256  # recall@200 >= 0.997 on the unit rows at M 32
_UNIT_TOLERANCE = 1e-3
HNSW_M, EF_CONSTRUCTION, EF_SEARCH = 32, 200, 400

# OpenMP keeps the thread count per calling thread, so a count set on the main thread would not
# reach the server's worker threads: search() applies it in whichever thread searches.
_search_threads: int | None = None  # None: faiss's default


class AnnIndexError(ValueError):
    """The ANN index or its input is unusable; the message names the problem."""


def set_search_threads(n: int) -> None:
    """Cap the faiss (OpenMP) threads of one search, in every thread that searches."""
    global _search_threads
    if int(n) < 1:
        raise ValueError(f"search threads must be >= 1, got {n}")
    _search_threads = int(n)
    faiss.omp_set_num_threads(_search_threads)


@contextmanager
def _one_thread():
    # Parallel HNSW insertion takes per-node locks in thread-timing order, so the graph could
    # differ between runs; on one thread it is a function of the input alone.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = self._writers = 0  # _writers: waiting or writing
        self._writing = False

    @contextmanager
    def read(self):
        with self._cond:
            self._cond.wait_for(lambda: self._writers == 0)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self):
        with self._cond:
            self._writers += 1
            self._cond.wait_for(lambda: self._readers == 0 and not self._writing)
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._writers -= 1
                self._cond.notify_all()


def _matrix(x: np.ndarray, dim: int | None, label: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise AnnIndexError(f"{label} must be a 2-D array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise AnnIndexError(f"{label} have dim {x.shape[1]}, the index has dim {dim}")
    if not np.isfinite(x).all():
        raise AnnIndexError(f"{label} hold {np.count_nonzero(~np.isfinite(x))} non-finite values")
    return x


def _ids(ids: np.ndarray, rows: int) -> np.ndarray:
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.shape != (rows,):
        raise AnnIndexError(f"ids must have shape ({rows},), got {ids.shape}")
    if rows and ids.min() < 0:
        raise AnnIndexError("ids must be >= 0 (-1 marks a missing result)")
    if np.unique(ids).size != rows:
        raise AnnIndexError("ids hold duplicates")
    return ids


class AnnIndex:
    """Inner-product top-n search over item vectors keyed by item index (int).

    Exact (faiss IndexFlatIP) below `exact_below` items: at 100k items the fastest setting with
    recall@200 >= 0.95 on both benchmark data shapes (bench/ann.py). Above, HNSW with M=32,
    efConstruction=200, efSearch=max(400, n): the fastest to reach 0.95 on the Gaussian data at
    d 32 and 64 (0.993 / 0.954); no HNSW setting reached it on the clustered data. Searches run
    concurrently with each other; add() waits for them and holds new ones back.
    """

    def __init__(self, index: faiss.IndexIDMap2) -> None:
        self._index = index
        self._inner = faiss.downcast_index(index.index)
        self._kind = "hnsw" if isinstance(self._inner, faiss.IndexHNSW) else "exact"
        self._lock = _ReadWriteLock()
        # HNSW: faiss position -> item id, item id -> live position, stale positions.
        labels = faiss.vector_to_array(index.id_map).astype(np.int64)
        self._labels = labels if self._kind == "hnsw" else labels[:0]  # exact: faiss maps ids
        uniq, last_reversed = np.unique(self._labels[::-1], return_index=True)
        live = self._labels.size - 1 - last_reversed
        self._where = dict(zip(uniq.tolist(), live.tolist(), strict=True))
        self._set_stale(np.setdiff1d(np.arange(self._labels.size), live))

    def _set_stale(self, stale: np.ndarray) -> None:
        self._stale = stale.astype(np.int64)
        # IDSelectorNot does not own its argument: keep the batch selector alive here.
        self._batch = faiss.IDSelectorBatch(self._stale) if stale.size else None
        self._selector = faiss.IDSelectorNot(self._batch) if stale.size else None

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: np.ndarray,
        *,
        exact_below: int | None = None,
        hnsw_m: int = HNSW_M,
        ef_construction: int = EF_CONSTRUCTION,
        ef_search: int = EF_SEARCH,
    ) -> AnnIndex:
        """Index `vectors` [n, d] under `ids` [n]: exact below `exact_below` rows, else HNSW.

        By default `exact_below` is EXACT_BELOW_UNIT_NORM for unit-norm vectors, else
        EXACT_BELOW."""
        vectors = _matrix(vectors, None, "vectors")
        ids = _ids(ids, vectors.shape[0])
        if exact_below is None:
            norms = np.linalg.norm(vectors, axis=1)
            unit = norms.size > 0 and float(np.abs(norms - 1.0).max()) <= _UNIT_TOLERANCE
            exact_below = EXACT_BELOW_UNIT_NORM if unit else EXACT_BELOW
            if unit and ef_search == EF_SEARCH:
                ef_search = EF_SEARCH_UNIT_NORM
        if vectors.shape[0] < exact_below:
            inner = faiss.IndexFlatIP(vectors.shape[1])
        else:
            inner = faiss.IndexHNSWFlat(vectors.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction, inner.hnsw.efSearch = ef_construction, ef_search
        index = faiss.IndexIDMap2(inner)  # faiss's Python wrapper keeps `inner` alive
        with _one_thread():
            index.add_with_ids(vectors, ids)
        return cls(index)

    @property
    def ntotal(self) -> int:
        """Live items (a replaced id counts once)."""
        return len(self._where) if self._kind == "hnsw" else int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def kind(self) -> str:
        return self._kind

    def describe(self) -> dict:
        """Kind, item count, dim and (HNSW) the graph parameters and stale entries."""
        out = {"kind": self._kind, "ntotal": self.ntotal, "dim": self.dim}
        if self._kind == "hnsw":
            hnsw = self._inner.hnsw
            out |= {"M": int(hnsw.nb_neighbors(1)), "ef_construction": int(hnsw.efConstruction)}
            out |= {"ef_search": int(hnsw.efSearch), "stale": int(self._stale.size)}
        return out

    def search(
        self,
        queries: np.ndarray,
        n: int,
        *,
        ef_search: int | None = None,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top `n` ids [q, n'] (int64) and inner products (float32), best first, n' <= n.

        n' = min(n, ntotal); a missing result (HNSW only, rare; or with ids excluded) is id
        -1, score -inf. `ef_search` overrides the HNSW default; either is raised to at least
        `n`. `exclude`: ids left out inside the search (a faiss IDSelector), so that filtering
        many items (rooms not live) costs no over-fetching.
        """
        if n < 1:
            raise AnnIndexError(f"n must be >= 1, got {n}")
        queries = _matrix(queries, self.dim, "queries")
        if _search_threads is not None:
            faiss.omp_set_num_threads(_search_threads)
        with self._lock.read():
            k = min(n, self.ntotal)
            if k == 0 or queries.shape[0] == 0:
                shape = (queries.shape[0], k)
                return np.full(shape, -1, np.int64), np.full(shape, -np.inf, np.float32)
            excluded = None if exclude is None else np.asarray(exclude, np.int64).reshape(-1)
            if excluded is not None and excluded.size == 0:
                excluded = None
            if self._kind == "exact":
                if excluded is None:
                    scores, ids = self._index.search(queries, k)
                else:  # IndexIDMap translates the selector to its own ids
                    batch = faiss.IDSelectorBatch(excluded)
                    params = faiss.SearchParameters(sel=faiss.IDSelectorNot(batch))
                    scores, ids = self._index.search(queries, k, params=params)
            else:
                ef = max(ef_search or int(self._inner.hnsw.efSearch), k)
                selector, keep = self._selector, None
                if excluded is not None:  # the inner index knows positions, not ids
                    gone = np.union1d(self._stale, np.flatnonzero(np.isin(self._labels, excluded)))
                    keep = faiss.IDSelectorBatch(gone)  # alive until the search returns
                    selector = faiss.IDSelectorNot(keep)
                params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
                scores, positions = self._inner.search(queries, k, params=params)
                del keep
                ids = np.where(positions >= 0, self._labels[np.maximum(positions, 0)], -1)
        return ids.astype(np.int64), np.where(ids >= 0, scores, -np.inf).astype(np.float32)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add items to the live index (no rebuild); an id already present is replaced."""
        vectors = _matrix(vectors, self.dim, "vectors")
        ids = _ids(ids, vectors.shape[0])
        with self._lock.write(), _one_thread():
            if self._kind == "exact":
                self._index.remove_ids(ids)
                self._index.add_with_ids(vectors, ids)
                return
            start = self._labels.size
            replaced = [self._where[i] for i in ids.tolist() if i in self._where]
            self._index.add_with_ids(vectors, ids)
            self._labels = np.concatenate([self._labels, ids])
            self._where.update(zip(ids.tolist(), range(start, start + ids.size), strict=True))
            if replaced:
                self._set_stale(np.union1d(self._stale, replaced))

    def to_bytes(self) -> bytes:
        """The index in faiss's own binary format (faiss.serialize_index)."""
        with self._lock.read():
            return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, dim: int, count: int) -> AnnIndex:
        """Read `to_bytes` output; refuse unreadable bytes, another dim or count, non-IP."""
        if not data:
            raise AnnIndexError("ANN index bytes are empty")
        try:
            index = faiss.deserialize_index(np.frombuffer(data, np.uint8))
        except (RuntimeError, MemoryError) as err:
            why = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise AnnIndexError(
                f"ANN index bytes are unreadable (corrupt or truncated, {len(data)} bytes): {why}"
            ) from err
        if not isinstance(index, faiss.IndexIDMap2):
            raise AnnIndexError(f"ANN index is a {type(index).__name__}, not an IndexIDMap2")
        inner = faiss.downcast_index(index.index)
        if not isinstance(inner, (faiss.IndexFlat, faiss.IndexHNSWFlat)):
            raise AnnIndexError(f"ANN index wraps an unsupported {type(inner).__name__}")
        if inner.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise AnnIndexError(f"ANN index metric is {inner.metric_type}, not inner product")
        if index.d != dim:
            raise AnnIndexError(f"ANN index has dim {index.d}, the version's vectors have {dim}")
        ann = cls(index)
        if ann.ntotal != count:
            raise AnnIndexError(f"ANN index holds {ann.ntotal} items, the version has {count}")
        return ann

    def verify(
        self,
        vectors: np.ndarray,
        ids: np.ndarray,
        *,
        queries: int = 16,
        n: int = 50,
        min_recall: float = 0.9,
        seed: int = 0,
    ) -> float:
        """Recall@n against exact search over `vectors`, with `queries` sampled rows as queries.

        A result counts when its true inner product reaches the exact n-th best (ties count).
        AnnIndexError if the recall is below `min_recall`, if the index's scores disagree with
        `vectors`, or if the index does not hold as many items.
        """
        vectors = _matrix(vectors, self.dim, "vectors")
        ids = _ids(ids, vectors.shape[0])
        if self.ntotal != ids.size:
            raise AnnIndexError(f"ANN index holds {self.ntotal} items, expected {ids.size}")
        if ids.size == 0:
            return 1.0
        rows = np.random.default_rng(seed).choice(ids.size, min(queries, ids.size), replace=False)
        k = min(n, ids.size)
        exact = vectors[rows] @ vectors.T
        kth = np.partition(exact, -k, axis=1)[:, [-k]]
        got_ids, got_scores = self.search(vectors[rows], k)
        order = np.argsort(ids)
        slot = order[np.minimum(np.searchsorted(ids, got_ids, sorter=order), ids.size - 1)]
        known = ids[slot] == got_ids
        true = np.take_along_axis(exact, slot, axis=1)
        tol = 1e-4 * (1.0 + np.abs(true))
        if wrong := int(np.count_nonzero(known & (np.abs(got_scores - true) > tol))):
            raise AnnIndexError(
                f"ANN index scores disagree with the item vectors for {wrong} of "
                f"{got_ids.size} results: it was built from other vectors"
            )
        recall = float(np.count_nonzero(known & (true >= kth - tol)) / got_ids.size)
        if recall < min_recall:
            raise AnnIndexError(
                f"ANN index recall@{k} is {recall:.3f} against exact search over the item "
                f"vectors, below {min_recall}"
            )
        return recall
