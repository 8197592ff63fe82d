"""What a model version holds, written and read in one place (data-contracts §4).

`encode_assets(VersionContents)` is the only writer of a version's assets and `load_files`
the only reader: it verifies the checksums (the engine's saved format), loads the graph, and
checks and decodes every asset into a typed `LoadedVersion`. Serving, batch scoring, the
promotion gate and the benchmarks all score through `LoadedVersion`, so index checks, pair
scoring and top-K ranking (`rank_top_k`) are written once.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "REQUIRED_INPUTS",
    "REQUIRED_OUTPUT",
    "SERVING_SIGNATURE",
    "LoadedVersion",
    "SignatureSpec",
    "TensorSpec",
    "VersionContents",
    "VersionError",
    "Vocab",
    "encode_assets",
    "load_files",
    "rank_top_k",
]

SERVING_SIGNATURE = "serving_default"
REQUIRED_INPUTS = ("user_idx", "item_idx")
REQUIRED_OUTPUT = "score"
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


@dataclass
class VersionContents:
    """Everything a version holds beside its graph, as the exporter hands it over."""

    vocabs: dict[str, dict]  # name -> the features stage's vocabulary ({"tokens": [...], ...})
    popular_idx: np.ndarray  # most popular items first (the fallback for unknown users)
    popular_count: np.ndarray
    seen_indptr: np.ndarray  # CSR of each user's seen items, indexed by user_idx
    seen_indices: np.ndarray
    feature_spec: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    report: dict[str, bytes] = field(default_factory=dict)  # report.md and its plots


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

    @property
    def users(self) -> Vocab:
        return self.vocabs["user_id"]

    @property
    def items(self) -> Vocab:
        return self.vocabs["item_id"]

    def predict(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on typed input arrays; ValueError for an index out of range."""
        for name, limit in (("user_idx", len(self.users)), ("item_idx", len(self.items))):
            values = inputs.get(name)
            if values is not None and values.size and (values.min() < 0 or values.max() >= limit):
                bad = values[(values < 0) | (values >= limit)][:10].tolist()
                raise ValueError(f"{name} out of range [0, {limit}): {bad}")
        out = self.saved.predict(signature_name, inputs)
        return {k: np.asarray(v) for k, v in out.items()}

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores (float32) of (user, item) index pairs, in bounded chunks."""
        users, items = np.asarray(users, np.int32), np.asarray(items, np.int32)
        out = np.empty(items.size, np.float32)
        for start in range(0, items.size, _PAIRS_PER_CALL):
            part = slice(start, start + _PAIRS_PER_CALL)
            inputs = {"user_idx": users[part], "item_idx": items[part]}
            out[part] = self.predict(SERVING_SIGNATURE, inputs)[REQUIRED_OUTPUT].reshape(-1)
        return out

    def score(self, user_idx: int, item_idx: np.ndarray) -> np.ndarray:
        """Scores of one user against `item_idx` (float32, same order)."""
        return self.score_pairs(np.full(item_idx.shape[0], user_idx, np.int32), item_idx)

    def seen(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with (empty for users beyond the CSR)."""
        if user_idx + 1 >= self.seen_indptr.shape[0]:
            return np.empty(0, dtype=np.int32)
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    def all_items(self) -> np.ndarray:
        """Every known item index (1..n-1), the default candidate pool."""
        return np.arange(1, len(self.items), dtype=np.int32)

    def recommend(
        self, user_idx: int, k: int, exclude_seen: bool, candidates: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (item indices, scores) for one user, best first."""
        pool = np.unique(self.all_items() if candidates is None else candidates)
        if exclude_seen:
            pool = pool[~np.isin(pool, self.seen(user_idx))]
        if pool.size == 0:
            return pool, np.empty(0, dtype=np.float32)
        scores = self.score(user_idx, pool)
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


# ---- writing ------------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode()


def encode_assets(contents: VersionContents) -> dict[str, bytes]:
    """The §4 `assets/` files of `contents`, as relative path -> bytes."""
    assets = {f"vocab/{name}.json": _json_bytes(v) for name, v in contents.vocabs.items()}
    buffer = io.BytesIO()
    np.savez(
        buffer,
        indptr=np.asarray(contents.seen_indptr, np.int64),
        indices=np.asarray(contents.seen_indices, np.int32),
    )
    assets.update(
        {
            "feature_spec.json": _json_bytes(contents.feature_spec),
            "metrics.json": _json_bytes(contents.metrics),
            "popular_items.json": _json_bytes(
                {
                    "item_idx": np.asarray(contents.popular_idx).astype(int).tolist(),
                    "count": np.asarray(contents.popular_count).astype(int).tolist(),
                }
            ),
            "seen.npz": buffer.getvalue(),
            **contents.report,
        }
    )
    return assets


# ---- reading ------------------------------------------------------------------------------


def _asset(assets: Mapping[str, bytes], rel: str) -> bytes:
    data = assets.get(rel)
    if data is None:
        raise VersionError("NOT_FOUND", f"missing asset {rel}")
    return data


def _read_json(assets: Mapping[str, bytes], rel: str, default: Any = None) -> Any:
    if default is not None and rel not in assets:
        return default
    try:
        return json.loads(_asset(assets, rel))
    except ValueError as exc:
        raise VersionError("DATA_LOSS", f"unreadable asset {rel}: {exc}") from None


def _read_vocabs(assets: Mapping[str, bytes]) -> dict[str, Vocab]:
    vocabs = {}
    for rel in dict.fromkeys(["vocab/user_id.json", "vocab/item_id.json", *sorted(assets)]):
        if not rel.startswith("vocab/") or not rel.endswith(".json"):
            continue
        data = _read_json(assets, rel)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not tokens:
            raise VersionError("INVALID_ARGUMENT", f"{rel}: expected {{'tokens': ['<unk>', ...]}}")
        vocabs[rel[len("vocab/") : -len(".json")]] = Vocab(
            data["tokens"], str(data.get("id_type", "string"))
        )
    return vocabs


def _read_popular(assets: Mapping[str, bytes], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    popular = _read_json(assets, "popular_items.json")
    try:
        idx = np.asarray(popular["item_idx"], dtype=np.int32).reshape(-1)
        count = np.asarray(popular["count"], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise VersionError("INVALID_ARGUMENT", f"popular_items.json: {exc}") from None
    if idx.shape != count.shape or (idx.size and (idx.min() < 0 or idx.max() >= n_items)):
        raise VersionError("INVALID_ARGUMENT", "popular_items.json: bad item_idx/count arrays")
    return idx, count


def _read_seen(assets: Mapping[str, bytes], n_users: int, n_items: int):
    try:
        with np.load(io.BytesIO(_asset(assets, "seen.npz")), allow_pickle=False) as npz:
            indptr, indices = npz["indptr"].astype(np.int64), npz["indices"].astype(np.int32)
    except (OSError, ValueError, KeyError) as exc:
        raise VersionError("DATA_LOSS", f"unreadable asset seen.npz: {exc}") from None
    if (
        indptr.ndim != 1
        or indptr.shape[0] < 1
        or indptr.shape[0] > n_users + 1
        or indptr[-1] != indices.shape[0]
        or np.any(np.diff(indptr) < 0)
    ):
        raise VersionError("INVALID_ARGUMENT", "seen.npz: indptr does not match indices/users")
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise VersionError("INVALID_ARGUMENT", "seen.npz: item index out of range")
    return indptr, indices


def _tensor_spec(spec: Mapping) -> TensorSpec:
    dtype, shape = spec.get("dtype"), spec.get("shape")
    dims = tuple(-1 if d is None else int(d) for d in shape) if shape is not None else (-1,)
    return TensorSpec(np.dtype(dtype).name if dtype is not None else "float32", dims)


def _signature_specs(saved) -> dict[str, SignatureSpec]:
    specs = {
        name: SignatureSpec(
            {k: _tensor_spec(v) for k, v in (sig.get("inputs") or {}).items()},
            {k: _tensor_spec(v) for k, v in (sig.get("outputs") or {}).items()},
        )
        for name, sig in (saved.signatures or {}).items()
    }
    sig = specs.get(SERVING_SIGNATURE)
    if sig is None:
        raise VersionError("INVALID_ARGUMENT", f"no {SERVING_SIGNATURE!r} signature")
    for name in REQUIRED_INPUTS:
        spec = sig.inputs.get(name)
        if spec is None or not spec.dtype.startswith("int"):
            raise VersionError(
                "INVALID_ARGUMENT", f"{SERVING_SIGNATURE}: needs integer input {name}"
            )
    if REQUIRED_OUTPUT not in sig.outputs:
        raise VersionError(
            "INVALID_ARGUMENT", f"{SERVING_SIGNATURE}: needs output {REQUIRED_OUTPUT}"
        )
    return specs


def load_files(
    name: str, version: int, uri: str, files: Mapping[str, bytes], device: str | None = None
) -> LoadedVersion:
    """Verify and load a version from its files; VersionError naming what is wrong."""
    from engine.saved import deserialize

    try:
        saved = deserialize(files, uri, device=device)
    except Exception as exc:  # checksum, format, unknown op, unreadable tensors, ...
        raise VersionError("DATA_LOSS", f"cannot load saved graph: {exc}") from exc
    specs = _signature_specs(saved)
    assets = saved.assets
    vocabs = _read_vocabs(assets)
    n_users, n_items = len(vocabs["user_id"]), len(vocabs["item_id"])
    popular_idx, popular_count = _read_popular(assets, n_items)
    indptr, indices = _read_seen(assets, n_users, n_items)
    return LoadedVersion(
        name,
        version,
        uri,
        saved,
        specs,
        vocabs,
        indptr,
        indices,
        popular_idx,
        popular_count,
        _read_json(assets, "feature_spec.json", {}),
        _read_json(assets, "metrics.json", {}),
    )
