"""Two-stage recommendation: retrieve -> filter -> rank -> top k (`serving.recommend`).

Retrieval asks the retrieval version's ANN index for the user's nearest items (its
`user_embedding` against the item vectors); the filter leaves out the user's seen items and
the blocklist (before ranking, so that the ranker gets `candidates` eligible items: the index
is asked for that many plus as many as could be filtered out); the ranker version scores
what is left, and the best k are returned, ties to the earlier-retrieved item.

The two versions have their own vocabularies: a retrieved item reaches the ranker through
its raw id. An item the ranker does not know (a room created after its training, added to
the live index from its content) keeps the retrieval model's probability, sigmoid(u.v / T).

`recommend_chain` is the one implementation, used by `/recommend` and by batch top-K
(`batch.scoring`), so online and batch answers agree for the same versions.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from peppercorn.loaded_version import LoadedVersion

__all__ = ["ChainAnswer", "content_scores", "index_map", "recommend_chain"]

_MAPS: dict[tuple, np.ndarray] = {}
_MAPS_LOCK = threading.Lock()
_MAX_MAPS = 8


@dataclass
class ChainAnswer:
    """The top items (raw ids, scores), how many each stage saw, and each stage's seconds."""

    items: list[tuple[int | str, float]]
    retrieved: int
    ranked: int
    timings: dict[str, float] = field(default_factory=dict)


def index_map(source: LoadedVersion, target: LoadedVersion) -> np.ndarray:
    """int32 [len(source.items)]: each source item index's index in `target` (0: unknown)."""
    key = (source.uri, source.version, target.uri, target.version)
    with _MAPS_LOCK:
        found = _MAPS.get(key)
    if found is not None:
        return found
    if source.items.tokens == target.items.tokens:
        mapping = np.arange(len(source.items), dtype=np.int32)
    else:
        index = target.items.index
        mapping = np.fromiter(
            (index.get(t, 0) for t in source.items.tokens), np.int32, len(source.items)
        )
    mapping[0] = 0
    with _MAPS_LOCK:
        if len(_MAPS) >= _MAX_MAPS:
            _MAPS.pop(next(iter(_MAPS)))
        _MAPS[key] = mapping
    return mapping


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


def _blocked(retrieval: LoadedVersion, blocklist: list[str]) -> np.ndarray:
    added = retrieval.retrieval.added
    found = [retrieval.items.lookup(raw) or added.get(str(raw), 0) for raw in blocklist]
    return np.asarray([i for i in found if i], np.int64)


def recommend_chain(
    retrieval: LoadedVersion,
    ranker: LoadedVersion,
    user_id: int | str,
    k: int,
    candidates: int,
    exclude_seen: bool = True,
    blocklist: list[str] = (),
) -> ChainAnswer:
    """The chain for one user: top-k (raw id, score) of `candidates` retrieved items."""
    timings, clock = {}, time.perf_counter()
    index = retrieval.retrieval
    user_r = retrieval.users.lookup(user_id)
    query = retrieval.user_vectors(np.asarray([user_r]))
    excluded = _blocked(retrieval, list(blocklist))
    if exclude_seen:
        excluded = np.concatenate([excluded, retrieval.seen(user_r).astype(np.int64)])
    found, sims = index.search(query, candidates + excluded.size)
    found, sims = found[0], sims[0]
    keep = found >= 0
    found, sims = found[keep], sims[keep]
    retrieved = int(found.size)
    timings["retrieve"], clock = time.perf_counter() - clock, time.perf_counter()

    keep = ~np.isin(found, excluded)
    mapping = index_map(retrieval, ranker)
    in_vocab = found < index.n_items
    ranked = np.zeros(found.size, np.int32)
    ranked[in_vocab] = mapping[found[in_vocab]]
    user_k = ranker.users.lookup(user_id)
    if exclude_seen:  # the ranker's own record too: the versions may be of different days
        keep &= ~np.isin(ranked, ranker.seen(user_k)) | (ranked == 0)
    found, sims, ranked = (a[keep][:candidates] for a in (found, sims, ranked))
    timings["filter"], clock = time.perf_counter() - clock, time.perf_counter()

    scores = _sigmoid(sims / index.temperature)
    known = ranked > 0
    if known.any():
        scores[known] = ranker.score(user_k, ranked[known])
    timings["rank"], clock = time.perf_counter() - clock, time.perf_counter()

    order = np.argsort(-scores, kind="stable")[:k]
    added = index.raw_of_added() if (~in_vocab).any() or index.added else {}
    items = [
        (
            ranker.items.raw(int(ranked[i])) if ranked[i] else _raw(retrieval, added, found[i]),
            float(scores[i]),
        )
        for i in order
    ]
    timings["top_k"] = time.perf_counter() - clock
    return ChainAnswer(items, retrieved, int(found.size), timings)


def _raw(retrieval: LoadedVersion, added: dict[int, str], idx: int) -> int | str:
    if idx < retrieval.retrieval.n_items:
        return retrieval.items.raw(int(idx))
    return added[int(idx)]


def content_scores(retrieval: LoadedVersion, user_id: int | str, content: np.ndarray) -> np.ndarray:
    """The retrieval model's probabilities of items described by `content` [n, width] alone
    (items no ranker knows) for one user."""
    user_r = retrieval.users.lookup(user_id)
    query = retrieval.user_vectors(np.asarray([user_r]))
    vectors = retrieval.content_vectors(content)
    return _sigmoid((vectors @ query[0]) / retrieval.retrieval.temperature)
