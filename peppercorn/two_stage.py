"""Two-stage recommendation, batched: retrieve -> filter -> rank -> top k for many users at once.

Retrieval asks the retrieval version's ANN index for each user's nearest items (its
`user_embedding` against the item vectors); the filter leaves out the user's seen items and the
blocklist (before ranking, so that the ranker gets `candidates` eligible items: the index is
asked for that many plus as many as could be filtered out); the ranker version scores what is
left, and the best k are kept, ties to the earlier-retrieved item.

The two versions have their own vocabularies: a retrieved item reaches the ranker through its
raw id. An item the ranker does not know (a room created after its training, added to the
live index from its content) is placed among the ranked candidates where retrieval puts it:
it gets the ranker's score at the quantile its retrieval similarity has among the similarities
of the candidates the ranker scored (`_place_unranked`), since the retrieval model's own
probability, sigmoid(u.v / T), is on another scale (a softmax-trained logit over a small
temperature is near 1 for any close item). With no ranked candidate it keeps that probability.

One implementation serves both callers: `/recommend` asks for one user (`recommend_chain`,
with per-stage timings), batch top-K for chunks of thousands (`chain_top_k`). A chunk costs
one user-tower run, one index search per distinct fetch size (users with the same number of
excluded items share it, so each user's search is the one the single-user path makes: the
same n, hence the same HNSW efSearch) and bounded `score_pairs` calls over all its (user,
candidate) pairs. Per user, the logic is the single-user path's; the floats agree to BLAS
rounding (a matrix product's last bit may depend on how many rows it has).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from peppercorn.loaded_version import LoadedVersion
from peppercorn.online_features import (
    OnlineUser,
    item_indices,
    offline_indices,
    online_history,
    online_seen,
)

__all__ = [
    "STAGES",
    "ChainAnswer",
    "ChainTopK",
    "OnlineUser",
    "chain_top_k",
    "content_scores",
    "index_map",
    "item_tokens",
    "recommend_chain",
    "recommend_users",
    "user_indices",
]

STAGES = ("retrieve", "filter", "rank", "top_k")
USERS_PER_CHUNK = 2048  # bounds a chunk's [users, fetched] arrays and its ranker pairs
_MAPS: dict[tuple, np.ndarray] = {}
_MAPS_LOCK = threading.Lock()
_MAX_MAPS = 16


@dataclass
class ChainAnswer:
    """One user's top items (raw ids, scores), how many each stage saw, each stage's seconds."""

    items: list[tuple[int | str, float]]
    retrieved: int
    ranked: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class ChainTopK:
    """The picks for a list of users, flat, each user's best first.

    `rows` is the user's position in the request; an item the ranker does not know has
    `ranker_items` 0 (its id comes from `retrieval_items`, >= n_items for one added live).
    """

    rows: np.ndarray  # int64 [picks]
    ranks: np.ndarray  # int32 [picks], 1 = best
    ranker_items: np.ndarray  # int32 [picks]
    retrieval_items: np.ndarray  # int64 [picks]
    scores: np.ndarray  # float32 [picks]
    retrieved: np.ndarray  # int32 [users]: results the index returned
    ranked: np.ndarray  # int32 [users]: eligible candidates the ranker scored
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, all chunks


def index_map(source: LoadedVersion, target: LoadedVersion, vocab: str = "item_id") -> np.ndarray:
    """int32 [len(source vocab)]: each source index's index in `target`'s (0: unknown)."""
    key = (source.uri, source.version, target.uri, target.version, vocab)
    with _MAPS_LOCK:
        found = _MAPS.get(key)
    if found is not None:
        return found
    tokens, target_vocab = source.vocabs[vocab].tokens, target.vocabs[vocab]
    if tokens == target_vocab.tokens:
        mapping = np.arange(len(tokens), dtype=np.int32)
    else:
        index = target_vocab.index
        mapping = np.fromiter((index.get(t, 0) for t in tokens), np.int32, len(tokens))
    mapping[0] = 0
    with _MAPS_LOCK:
        if len(_MAPS) >= _MAX_MAPS:
            _MAPS.pop(next(iter(_MAPS)))
        _MAPS[key] = mapping
    return mapping


def user_indices(
    retrieval: LoadedVersion, ranker: LoadedVersion, user_ids: Sequence
) -> tuple[np.ndarray, np.ndarray]:
    """Each raw user id's index in the retrieval and the ranker vocabularies (0: unknown)."""
    users_r = np.fromiter((retrieval.users.lookup(u) for u in user_ids), np.int32, len(user_ids))
    users_k = np.fromiter((ranker.users.lookup(u) for u in user_ids), np.int32, len(user_ids))
    return users_r, users_k


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


def _seen_pairs(version: LoadedVersion, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of every seen item of `users` (LoadedVersion.seen for each, vectorised)."""
    indptr = version.seen_indptr
    inside = users + 1 < indptr.shape[0]  # users beyond the CSR have seen nothing
    safe = np.where(inside, users, 0)
    starts = np.where(inside, indptr[safe], 0)
    counts = np.where(inside, indptr[np.minimum(safe + 1, indptr.shape[0] - 1)] - starts, 0)
    rows = np.repeat(np.arange(users.size), counts)
    offsets = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, version.seen_indices[np.repeat(starts, counts) + offsets].astype(np.int64)


def _pair_keys(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    # Item indices are below 2^31 (int32 vocabularies; added items count on from n_items).
    return (np.asarray(rows, np.int64) << 32) | np.asarray(items, np.int64)


def _retrieve(retrieval, users_r, candidates, blocked, exclude_seen, online=None):
    """(found [B, n_max] with -1 for none, sims, each row's excluded retrieval items' keys).

    `blocked` items are left out inside the index search; seen items are fetched and dropped
    (few per user). `online`: the one user's store state (history, seen items)."""
    histories = None if online is None else online_history(retrieval, users_r[0], online.events)
    query = retrieval.user_vectors(users_r, histories)
    rows, seen = _seen_pairs(retrieval, users_r) if exclude_seen else (np.empty(0, np.int64),) * 2
    if exclude_seen and online is not None and online.events:
        more = online_seen(retrieval, online.events)
        rows, seen = (
            np.concatenate([rows, np.zeros(more.size, rows.dtype)]),
            np.concatenate([seen, more]),
        )
    fetch = candidates + np.bincount(rows, minlength=users_r.size)
    found = np.full((users_r.size, int(fetch.max())), -1, np.int64)
    sims = np.full(found.shape, -np.inf, np.float32)
    # One search per distinct fetch size: each user's search is exactly the single-user one.
    for n in np.unique(fetch).tolist():
        group = np.flatnonzero(fetch == n)
        ids, scores = retrieval.retrieval.search(query[group], n, exclude=blocked)
        found[group, : ids.shape[1]], sims[group, : ids.shape[1]] = ids, scores
    return found, sims, np.sort(_pair_keys(rows, seen))


def _member(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(keys.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def _chunk(retrieval, ranker, users_r, users_k, k, candidates, blocked, exclude_seen, timings,
           online=None):  # fmt: skip
    clock = time.perf_counter()
    index = retrieval.retrieval
    found, sims, excluded = _retrieve(retrieval, users_r, candidates, blocked, exclude_seen, online)
    rows = np.arange(users_r.size)[:, None]
    valid = found >= 0
    clock = _lap(timings, "retrieve", clock)

    keep = valid & ~_member(_pair_keys(rows, found), excluded)
    in_vocab = valid & (found < index.n_items)
    ranked = np.where(in_vocab, index_map(retrieval, ranker)[np.where(in_vocab, found, 0)], 0)
    if exclude_seen:  # the ranker's own record too: the versions may be of different days
        pr, pi = _seen_pairs(ranker, users_k)
        if online is not None and online.events:
            more = online_seen(ranker, online.events)
            pr, pi = np.concatenate([pr, np.zeros(more.size, pr.dtype)]), np.concatenate([pi, more])
        seen_k = np.sort(_pair_keys(pr, pi))
        keep &= ~_member(_pair_keys(rows, ranked), seen_k) | (ranked == 0)
    # The first `candidates` kept of each row, in retrieval order, packed to the left.
    slot = np.cumsum(keep, axis=1) - 1
    keep &= slot < candidates
    r, c = np.nonzero(keep)
    width = max(1, min(candidates, found.shape[1]))
    cand_found = np.full((users_r.size, width), -1, np.int64)
    cand_ranked = np.zeros((users_r.size, width), np.int32)
    cand_sims = np.zeros((users_r.size, width), np.float32)
    s = slot[r, c]
    cand_found[r, s], cand_ranked[r, s], cand_sims[r, s] = found[r, c], ranked[r, c], sims[r, c]
    clock = _lap(timings, "filter", clock)

    scores = np.full(cand_found.shape, -np.inf, np.float32)
    filled = cand_found >= 0
    scores[filled] = _sigmoid(cand_sims[filled] / index.temperature)
    known = filled & (cand_ranked > 0)
    if known.any():
        kr, kc = np.nonzero(known)
        histories = None if online is None else online_history(ranker, users_k[0], online.events)
        scores[kr, kc] = ranker.score_pairs(users_k[kr], cand_ranked[kr, kc], histories)
        _place_unranked(scores, cand_sims, known, filled & ~known)
    clock = _lap(timings, "rank", clock)

    # Stable: among equal scores the earlier-retrieved candidate comes first.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(filled, order, axis=1)
    pr, pc = np.nonzero(picked)
    cols = order[pr, pc]
    out = ChainTopK(
        rows=pr.astype(np.int64),
        ranks=(pc + 1).astype(np.int32),
        ranker_items=cand_ranked[pr, cols],
        retrieval_items=cand_found[pr, cols],
        scores=scores[pr, cols],
        retrieved=valid.sum(axis=1).astype(np.int32),
        ranked=filled.sum(axis=1).astype(np.int32),
    )
    _lap(timings, "top_k", clock)
    return out


def _place_unranked(scores, sims, known, unranked) -> None:
    """Score each unranked candidate with the ranker's score at its similarity's quantile
    among the row's ranked candidates (rows are users; in place; rare, so row by row)."""
    for row in np.flatnonzero(unranked.any(axis=1) & known.any(axis=1)).tolist():
        ranked_sims = np.sort(sims[row, known[row]])
        ranked_scores = np.sort(scores[row, known[row]])
        cols = np.flatnonzero(unranked[row])
        below = np.searchsorted(ranked_sims, sims[row, cols], side="right")
        share = below / ranked_sims.size  # of ranked candidates no more similar than it
        scores[row, cols] = np.quantile(ranked_scores, share).astype(np.float32)


def _nothing() -> ChainTopK:
    none = np.empty(0, np.int32)
    return ChainTopK(none.astype(np.int64), none, none, none.astype(np.int64),
                     none.astype(np.float32), none, none)  # fmt: skip


def _lap(timings: dict[str, float], stage: str, clock: float) -> float:
    now = time.perf_counter()
    timings[stage] = timings.get(stage, 0.0) + now - clock
    return now


def chain_top_k(
    retrieval: LoadedVersion,
    ranker: LoadedVersion,
    users_r: np.ndarray,
    users_k: np.ndarray,
    k: int,
    candidates: int,
    exclude_seen: bool = True,
    blocklist: Sequence[str] = (),
    users_per_chunk: int = USERS_PER_CHUNK,
    online: OnlineUser | None = None,
) -> ChainTopK:
    """The chain for users given by their retrieval (`users_r`) and ranker (`users_k`) indices
    (0: unknown to that version), in chunks of `users_per_chunk`. `online`: the store's state
    for a single user (its events and the rooms not live)."""
    users_r, users_k = np.asarray(users_r, np.int32), np.asarray(users_k, np.int32)
    if online is not None and users_r.size != 1:
        raise ValueError(f"online state is for one user, got {users_r.size}")
    timings = dict.fromkeys(STAGES, 0.0)
    clock = time.perf_counter()
    blocked = item_indices(retrieval, blocklist)
    if online is not None and online.offline:
        blocked = np.union1d(blocked, offline_indices(retrieval, online.offline))
    _lap(timings, "filter", clock)
    parts = [_nothing()]  # the columns' dtypes when there are no users
    for start in range(0, users_r.size, users_per_chunk):
        end = start + users_per_chunk
        part = _chunk(retrieval, ranker, users_r[start:end], users_k[start:end], k, candidates,
                      blocked, exclude_seen, timings, online)  # fmt: skip
        part.rows += start
        parts.append(part)
    columns = [f.name for f in fields(ChainTopK) if f.name != "timings"]
    joined = {c: np.concatenate([getattr(p, c) for p in parts]) for c in columns}
    return ChainTopK(**joined, timings=timings)


def _raw_ids(retrieval, ranker, ranker_items: np.ndarray, retrieval_items: np.ndarray) -> list:
    index = retrieval.retrieval
    added = index.raw_of_added() if index.added else {}
    out = []
    for ranked, found in zip(ranker_items.tolist(), retrieval_items.tolist(), strict=True):
        if ranked:
            out.append(ranker.items.raw(ranked))
        elif found < index.n_items:
            out.append(retrieval.items.raw(found))
        else:
            out.append(added[found])
    return out


def item_tokens(retrieval, ranker, top: ChainTopK, tokens: np.ndarray | None = None) -> np.ndarray:
    """The picks' item ids as vocabulary tokens (strings), as batch top-K writes them;
    `tokens`: the ranker's item tokens as an object array, if the caller keeps one."""
    tokens = np.asarray(ranker.items.tokens, dtype=object) if tokens is None else tokens
    out = tokens[top.ranker_items]
    other = np.flatnonzero(top.ranker_items == 0)
    if other.size:  # known to retrieval only (or added live): rare, one by one
        raws = _raw_ids(retrieval, ranker, top.ranker_items[other], top.retrieval_items[other])
        out[other] = [str(raw) for raw in raws]
    return out


def recommend_users(
    retrieval: LoadedVersion,
    ranker: LoadedVersion,
    user_ids: Sequence,
    k: int,
    candidates: int,
    exclude_seen: bool = True,
    blocklist: Sequence[str] = (),
    online: OnlineUser | None = None,
) -> list[ChainAnswer]:
    """The chain for each raw user id: top-k (raw id, score) of `candidates` retrieved items.
    `timings` are the whole call's seconds per stage (all users together)."""
    users_r, users_k = user_indices(retrieval, ranker, user_ids)
    top = chain_top_k(retrieval, ranker, users_r, users_k, k, candidates, exclude_seen, blocklist,
                      online=online)  # fmt: skip
    clock = time.perf_counter()
    raws = _raw_ids(retrieval, ranker, top.ranker_items, top.retrieval_items)
    scores = top.scores.tolist()
    bounds = np.searchsorted(top.rows, np.arange(len(user_ids) + 1)).tolist()
    timings = {**top.timings, "top_k": top.timings["top_k"] + time.perf_counter() - clock}
    pairs = list(zip(raws, scores, strict=True))
    return [ChainAnswer(pairs[bounds[u] : bounds[u + 1]], int(top.retrieved[u]),
                        int(top.ranked[u]), timings) for u in range(len(user_ids))]  # fmt: skip


def recommend_chain(
    retrieval: LoadedVersion,
    ranker: LoadedVersion,
    user_id: int | str,
    k: int,
    candidates: int,
    exclude_seen: bool = True,
    blocklist: Sequence[str] = (),
    online: OnlineUser | None = None,
) -> ChainAnswer:
    """The chain for one user (`/recommend`), with each stage's seconds in `timings`."""
    return recommend_users(retrieval, ranker, [user_id], k, candidates, exclude_seen, blocklist,
                           online)[0]  # fmt: skip


def content_scores(retrieval: LoadedVersion, user_id: int | str, content: np.ndarray) -> np.ndarray:
    """The retrieval model's probabilities of items described by `content` [n, width] alone
    (items no ranker knows) for one user."""
    user_r = retrieval.users.lookup(user_id)
    query = retrieval.user_vectors(np.asarray([user_r]))
    vectors = retrieval.content_vectors(content)
    return _sigmoid((vectors @ query[0]) / retrieval.retrieval.temperature)
