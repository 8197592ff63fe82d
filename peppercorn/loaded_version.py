"""A loaded model version (data-contracts §4): graph, signatures and decoded assets.

`peppercorn.version_assets` builds it (verifying every file) and `ExportedVersion.open()`
hands it out. Serving, batch scoring, the promotion gate and the benchmarks all score through
`LoadedVersion`, so index checks, pair scoring and top-K ranking (`rank_top_k`) are written
once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from peppercorn.csr import padded_rows
from peppercorn.finite import NonFiniteError, non_finite_report

__all__ = [
    "CONTENT_EMBEDDING",
    "EMBEDDING_OUTPUT",
    "HISTORY_INPUT",
    "ITEM_EMBEDDING",
    "USER_EMBEDDING",
    "REQUIRED_INPUTS",
    "REQUIRED_OUTPUT",
    "SERVING_SIGNATURE",
    "LoadedVersion",
    "SignatureSpec",
    "TensorSpec",
    "VersionError",
    "Vocab",
    "rank_top_k",
]

SERVING_SIGNATURE = "serving_default"
REQUIRED_INPUTS = ("user_idx", "item_idx")
REQUIRED_OUTPUT = "score"
# The optional input of a model that reads each user's history: int32 [rows, L], the user's
# item indices newest first, 0 = padding (and the unknown item). rows = one per scored pair, or
# 1 for one user's history broadcast against every item.
HISTORY_INPUT = "history"
# A retrieval model's signatures (each with one output, EMBEDDING_OUTPUT [rows, d]):
# user_idx (+ history) -> the user's vector; item_idx -> the item's; content -> the vector the
# item tower gives an item from its content alone (an item created after training).
USER_EMBEDDING, ITEM_EMBEDDING, CONTENT_EMBEDDING = (
    "user_embedding", "item_embedding", "content_embedding",
)  # fmt: skip
EMBEDDING_OUTPUT = "embedding"
_PAIRS_PER_CALL = 131_072  # bounds one graph run's memory when scoring many pairs


class VersionError(Exception):
    """A version that cannot be used; `code` is TF Serving's error code name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Vocab:
    """Raw id <-> index of one vocabulary (§3 of the data contracts); index 0 is unknown."""

    def __init__(self, tokens: list, id_type: str = "string"):
        if not tokens:
            raise ValueError("vocabulary has no tokens (index 0 must be the unknown token)")
        self.tokens = [str(t) for t in tokens]
        self.id_type = id_type
        self.index = {t: i for i, t in enumerate(self.tokens) if i > 0}

    def __len__(self) -> int:
        return len(self.tokens)

    def lookup(self, raw: int | str) -> int:
        """Index of a raw id (an int matches its decimal string form), 0 when unknown."""
        return self.index.get(str(raw), 0)

    def raw(self, idx: int) -> int | str:
        """The raw id of an index, as an int when the source ids were integers."""
        token = self.tokens[idx]
        return int(token) if self.id_type == "int" else token


@dataclass(frozen=True)
class TensorSpec:
    """dtype as a numpy name (`int32`), shape with -1 for any size."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SignatureSpec:
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def rank_top_k(scores: np.ndarray, excluded: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the k best non-excluded scores, ties to the lower column.

    Returns (columns [rows, k'], valid [rows, k']) with k' = min(k, columns); `valid` is False
    where a row had fewer than k' eligible columns. Callers keep columns in item-index order,
    so ties go to the lower item index, online and in batch alike.
    """
    masked = np.where(excluded, -np.inf, scores)
    kk = min(k, scores.shape[1])
    order = np.argsort(-masked, axis=1, kind="stable")[:, :kk]
    return order, ~np.take_along_axis(excluded, order, axis=1)


# User index -> that user's history row [L] (newest first), given instead of the exported one.
Histories = Mapping[int, np.ndarray] | None


@dataclass
class LoadedVersion:
    """A verified, loaded model version: graph, signatures and decoded assets."""

    name: str
    version: int
    uri: str
    saved: Any  # engine.SavedGraph
    signatures: dict[str, SignatureSpec]
    vocabs: dict[str, Vocab]
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popular_idx: np.ndarray
    popular_count: np.ndarray
    feature_spec: dict
    metrics: dict
    # Each user's history, newest first (CSR), and L, for a signature with a history input.
    history_indptr: np.ndarray | None = None
    history_indices: np.ndarray | None = None
    history_length: int = 0
    # A retrieval model's item vectors and ANN index (peppercorn.retrieval.Retrieval).
    retrieval: Any = None

    @property
    def users(self) -> Vocab:
        return self.vocabs["user_id"]

    @property
    def items(self) -> Vocab:
        return self.vocabs["item_id"]

    def predict(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on typed input arrays; ValueError for an index out of range,
        `NonFiniteError` for an output with NaN or inf."""
        for name, limit in (("user_idx", len(self.users)), ("item_idx", len(self.items))):
            values = inputs.get(name)
            if values is not None and values.size and (values.min() < 0 or values.max() >= limit):
                bad = values[(values < 0) | (values >= limit)][:10].tolist()
                raise ValueError(f"{name} out of range [0, {limit}): {bad}")
        if self.history_length and inputs.get(HISTORY_INPUT) is not None:
            inputs = {**inputs, HISTORY_INPUT: self._fit_history(inputs[HISTORY_INPUT], inputs)}
        out = {k: np.asarray(v) for k, v in self.saved.predict(signature_name, inputs).items()}
        problem = non_finite_report(out, kind="output")
        if problem is not None:  # JSON has no NaN, and a NaN score ranks nowhere sensible
            raise NonFiniteError(f"model {self.name} version {self.version}: {problem}")
        return out

    def _fit_history(self, history, inputs: dict) -> np.ndarray:
        """A history input checked and cut or padded to L columns; ValueError naming a problem."""
        history = np.asarray(history)
        if history.ndim != 2 or (history.size and history.dtype.kind not in "iu"):
            raise ValueError(
                f"{HISTORY_INPUT} must be integer item indices [rows, L], newest first; got "
                f"{history.dtype} of shape {list(history.shape)}"
            )
        n_items, rows = len(self.items), history.shape[0]
        if history.size and (history.min() < 0 or history.max() >= n_items):
            bad = history[(history < 0) | (history >= n_items)][:10].tolist()
            raise ValueError(f"{HISTORY_INPUT} out of range [0, {n_items}) (0: padding): {bad}")
        key = "item_idx" if "item_idx" in inputs else "user_idx"
        pairs = np.asarray(inputs.get(key, ())).reshape(-1).size
        if rows not in (1, pairs):
            raise ValueError(
                f"{HISTORY_INPUT} has {rows} rows: one per {key} ({pairs}), or 1 for all"
            )
        # Newest first: a longer history keeps its first (newest) L items.
        fitted = np.zeros((rows, self.history_length), np.int32)
        kept = min(self.history_length, history.shape[1])
        fitted[:, :kept] = history[:, :kept]
        return fitted

    def history_rows(self, users: np.ndarray, histories: Histories = None) -> np.ndarray:
        """[len(users), L] int32: each user's history, newest first, 0-padded: the row given
        in `histories` (user index -> [L], the online store's) or else the exported one."""
        if not self.history_length:
            raise ValueError(f"model {self.name} version {self.version} reads no history")
        rows = padded_rows(self.history_indptr, self.history_indices, users, self.history_length)
        if histories:
            for row, user in enumerate(np.asarray(users).reshape(-1).tolist()):
                if user in histories:
                    rows[row] = histories[user]
        return rows

    def pair_inputs(
        self, users: np.ndarray, items: np.ndarray, histories: Histories = None
    ) -> dict[str, np.ndarray]:
        """The serving signature's inputs for (user, item) pairs, histories included."""
        inputs = {"user_idx": np.asarray(users, np.int32), "item_idx": np.asarray(items, np.int32)}
        if self.history_length:
            inputs[HISTORY_INPUT] = self.history_rows(inputs["user_idx"], histories)
        return inputs

    def score_pairs(
        self, users: np.ndarray, items: np.ndarray, histories: Histories = None
    ) -> np.ndarray:
        """Scores (float32) of (user, item) index pairs, in bounded chunks.

        A model with a history input is run once per user (and chunk), its history (the row in
        `histories`, else the exported one) fed as one row the graph broadcasts against that
        user's items: [1, L] rather than a copy per pair, which would cost L x factors floats
        per scored pair.
        """
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
        out = np.empty(items.size, np.float32)
        runs = [np.arange(items.size)]  # without a history, any pairs share a graph run
        if self.history_length:
            order = np.argsort(users, kind="stable")
            runs = np.split(order, np.flatnonzero(np.diff(users[order])) + 1)
        for run in runs:
            extra = {}
            if self.history_length:  # one row, broadcast against the run's items
                extra[HISTORY_INPUT] = self.history_rows(users[run[:1]], histories)
            for start in range(0, run.size, _PAIRS_PER_CALL):
                part = run[start : start + _PAIRS_PER_CALL]
                inputs = {"user_idx": users[part], "item_idx": items[part], **extra}
                out[part] = self.predict(SERVING_SIGNATURE, inputs)[REQUIRED_OUTPUT].reshape(-1)
        return out

    def user_vectors(self, users: np.ndarray, histories: Histories = None) -> np.ndarray:
        """[len(users), d]: a retrieval model's user vectors, histories included."""
        inputs = {"user_idx": np.asarray(users, np.int32).reshape(-1)}
        if self.history_length:
            inputs[HISTORY_INPUT] = self.history_rows(inputs["user_idx"], histories)
        return self.predict(USER_EMBEDDING, inputs)[EMBEDDING_OUTPUT]

    def content_vectors(self, content: np.ndarray) -> np.ndarray:
        """[rows, d]: the item tower's vectors of items described by `content` alone."""
        inputs = {"content": np.asarray(content, np.float32)}
        return self.predict(CONTENT_EMBEDDING, inputs)[EMBEDDING_OUTPUT]

    def score(self, user_idx: int, item_idx: np.ndarray, history: np.ndarray | None = None):
        """Scores of one user against `item_idx` (float32, same order); `history`: the user's
        history row to use instead of the exported one."""
        users = np.full(item_idx.shape[0], user_idx, np.int32)
        return self.score_pairs(users, item_idx, None if history is None else {user_idx: history})

    def seen(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with (empty for users beyond the CSR)."""
        if user_idx + 1 >= self.seen_indptr.shape[0]:
            return np.empty(0, dtype=np.int32)
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    def all_items(self) -> np.ndarray:
        """Every known item index (1..n-1), the default candidate pool."""
        return np.arange(1, len(self.items), dtype=np.int32)

    def recommend(
        self,
        user_idx: int,
        k: int,
        exclude_seen: bool,
        candidates: np.ndarray | None = None,
        *,
        excluded: np.ndarray | None = None,
        history: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (item indices, scores) for one user, best first; `excluded`: more item
        indices left out (seen online, not live), `history`: the user's online history row."""
        pool = np.unique(self.all_items() if candidates is None else candidates)
        if exclude_seen:
            pool = pool[~np.isin(pool, self.seen(user_idx))]
        if excluded is not None and excluded.size:
            pool = pool[~np.isin(pool, excluded)]
        if pool.size == 0:
            return pool, np.empty(0, dtype=np.float32)
        scores = self.score(user_idx, pool, history)
        top, _ = rank_top_k(scores[None, :], np.zeros((1, pool.size), bool), k)
        return pool[top[0]], scores[top[0]]

    def top_k(self, users: np.ndarray, pool: np.ndarray, k: int):
        """For each user, the k best items of the sorted `pool` minus their seen items:
        (rows, ranks 1..k, item indices, scores) of the valid picks."""
        scores = self.score_pairs(np.repeat(users, pool.size), np.tile(pool, users.size))
        scores = scores.reshape(users.size, pool.size)
        excluded = np.zeros(scores.shape, dtype=bool)
        for row, user in enumerate(users.tolist()):
            seen = self.seen(user)
            pos = np.searchsorted(pool, seen)
            hit = pos < pool.size
            hit[hit] = pool[pos[hit]] == seen[hit]
            excluded[row, pos[hit]] = True
        order, valid = rank_top_k(scores, excluded, k)
        rows, cols = np.nonzero(valid)
        picked = order[rows, cols]
        return rows, cols + 1, pool[picked], scores[rows, picked]

    def popular(self, k: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Fallback top-k: the most popular items, scored by their share of interactions."""
        idx, count = self.popular_idx, self.popular_count.astype(np.float64)
        share = count / count.sum() if count.sum() > 0 else count
        if candidates is not None:
            keep = np.isin(idx, candidates)
            idx, share = idx[keep], share[keep]
        return idx[:k], share[:k].astype(np.float32)

    def variables(self) -> dict[str, np.ndarray]:
        """The saved variables' values by name."""
        return {v.name: self.saved.session.get_value(v) for v in self.saved.graph.variables}
