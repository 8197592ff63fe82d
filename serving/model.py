"""One loaded model version: its saved graph plus the assets the web endpoints need
(vocabularies, seen items, popular items), with index-level scoring on top.

The saved graph comes from `engine.load` (the loader seam: `load_version(...,
loader=...)`); everything here works on numpy arrays of indices, and the routers turn raw
ids into indices with the `Vocab`s.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.signatures import SignatureSpec, signature_specs

__all__ = ["LoadError", "ServedVersion", "Vocab", "load_version"]

log = logging.getLogger(__name__)

SERVING_SIGNATURE = "serving_default"
REQUIRED_INPUTS = ("user_idx", "item_idx")
REQUIRED_OUTPUT = "score"


class LoadError(Exception):
    """A version that cannot be served; `code` is TF Serving's error code name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Vocab:
    """Raw id <-> index of one vocabulary (§3 of the data contracts); index 0 is unknown."""

    def __init__(self, tokens: list[str], id_type: str):
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


@dataclass
class ServedVersion:
    """A model version ready to answer requests."""

    name: str
    version: int
    path: Path
    saved: Any
    signatures: dict[str, SignatureSpec]
    users: Vocab
    items: Vocab
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popular_idx: np.ndarray
    popular_count: np.ndarray
    metrics: dict = field(default_factory=dict)

    def predict(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a signature on already-typed input arrays (index ranges checked here)."""
        for name, limit in (("user_idx", len(self.users)), ("item_idx", len(self.items))):
            values = inputs.get(name)
            if values is not None and values.size and (values.min() < 0 or values.max() >= limit):
                bad = values[(values < 0) | (values >= limit)][:10].tolist()
                raise ValueError(f"{name} out of range [0, {limit}): {bad}")
        out = self.saved.predict(signature_name, inputs)
        return {k: np.asarray(v) for k, v in out.items()}

    def score(self, user_idx: int, item_idx: np.ndarray) -> np.ndarray:
        """Probability that `user_idx` likes each of `item_idx` (float32, same order)."""
        users = np.full(item_idx.shape[0], user_idx, dtype=np.int32)
        out = self.predict(SERVING_SIGNATURE, {"user_idx": users, "item_idx": item_idx})
        return out[REQUIRED_OUTPUT].astype(np.float32).reshape(-1)

    def seen(self, user_idx: int) -> np.ndarray:
        """Item indices the user interacted with (empty for users beyond the CSR)."""
        if user_idx + 1 >= self.seen_indptr.shape[0]:
            return np.empty(0, dtype=np.int32)
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]]

    def recommend(
        self, user_idx: int, k: int, exclude_seen: bool, candidates: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (item indices, scores), best first, ties broken by the lower index."""
        pool = np.arange(1, len(self.items), dtype=np.int32) if candidates is None else candidates
        pool = np.unique(pool)
        if exclude_seen:
            pool = pool[~np.isin(pool, self.seen(user_idx))]
        if pool.size == 0:
            return pool, np.empty(0, dtype=np.float32)
        scores = self.score(user_idx, pool)
        # np.unique sorted the pool, so a stable sort on -score breaks ties by index.
        top = np.argsort(-scores, kind="stable")[:k]
        return pool[top], scores[top]

    def popular(self, k: int, candidates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Fallback top-k: the most popular items, scored by their share of interactions."""
        idx, count = self.popular_idx, self.popular_count.astype(np.float64)
        share = count / count.sum() if count.sum() > 0 else count
        if candidates is not None:
            keep = np.isin(idx, candidates)
            idx, share = idx[keep], share[keep]
        return idx[:k], share[:k].astype(np.float32)

    def warm_up(self, requests: int) -> None:
        """Score a few requests and check the answers' shape and range; raises LoadError."""
        rng = np.random.default_rng(0)
        for n in (1, *(16 for _ in range(requests - 1))):
            users = rng.integers(0, len(self.users), n, dtype=np.int32)
            items = rng.integers(0, len(self.items), n, dtype=np.int32)
            try:
                out = self.predict(SERVING_SIGNATURE, {"user_idx": users, "item_idx": items})
            except Exception as exc:
                raise LoadError("INTERNAL", f"warm-up request failed: {exc}") from exc
            score = out.get(REQUIRED_OUTPUT)
            if score is None or score.reshape(-1).shape != (n,):
                got = None if score is None else score.shape
                raise LoadError("INTERNAL", f"warm-up: score has shape {got}, expected ({n},)")
            if not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1:
                raise LoadError("INTERNAL", "warm-up: scores are not probabilities in [0, 1]")


def _asset(assets: dict[str, bytes], rel: str) -> bytes:
    data = assets.get(rel)
    if data is None:
        raise LoadError("NOT_FOUND", f"missing asset {rel}")
    return data


def _read_json(assets: dict[str, bytes], rel: str) -> Any:
    try:
        return json.loads(_asset(assets, rel))
    except ValueError as exc:
        raise LoadError("DATA_LOSS", f"unreadable asset {rel}: {exc}") from None


def _read_vocab(assets: dict[str, bytes], rel: str) -> Vocab:
    data = _read_json(assets, rel)
    if not isinstance(data, dict) or not isinstance(data.get("tokens"), list) or not data["tokens"]:
        raise LoadError("INVALID_ARGUMENT", f"{rel}: expected {{'tokens': ['<unk>', ...]}}")
    return Vocab(data["tokens"], str(data.get("id_type", "string")))


def _read_seen(assets: dict[str, bytes], n_users: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(_asset(assets, "seen.npz")), allow_pickle=False) as npz:
            indptr, indices = npz["indptr"].astype(np.int64), npz["indices"].astype(np.int32)
    except (OSError, ValueError, KeyError) as exc:
        raise LoadError("DATA_LOSS", f"unreadable asset seen.npz: {exc}") from None
    if (
        indptr.ndim != 1
        or indptr.shape[0] < 1
        or indptr.shape[0] > n_users + 1
        or indptr[-1] != indices.shape[0]
        or np.any(np.diff(indptr) < 0)
    ):
        raise LoadError("INVALID_ARGUMENT", "seen.npz: indptr does not match indices/users")
    return indptr, indices


def _check_signature(specs: dict[str, SignatureSpec]) -> None:
    sig = specs.get(SERVING_SIGNATURE)
    if sig is None:
        raise LoadError("INVALID_ARGUMENT", f"no {SERVING_SIGNATURE!r} signature")
    for name in REQUIRED_INPUTS:
        spec = sig.inputs.get(name)
        if spec is None or not spec.dtype.startswith("int"):
            raise LoadError("INVALID_ARGUMENT", f"{SERVING_SIGNATURE}: needs integer input {name}")
    if REQUIRED_OUTPUT not in sig.outputs:
        raise LoadError("INVALID_ARGUMENT", f"{SERVING_SIGNATURE}: needs output {REQUIRED_OUTPUT}")


def default_loader(path: Path) -> Any:
    """`engine.load`, imported late so the server starts without the engine loaded."""
    from engine.saved import load

    return load(str(path))


def load_version(
    name: str, version: int, path: Path, loader: Callable[[Path], Any] = default_loader
) -> ServedVersion:
    """Load and validate one version directory; raises LoadError naming what is wrong."""
    try:
        saved = loader(path)
    except LoadError:
        raise
    except Exception as exc:
        # engine.load verifies the checksum over graph, variables and assets, and
        # hands the (verified) asset bytes back, so assets are never re-read from disk.
        raise LoadError("DATA_LOSS", f"cannot load saved graph: {exc}") from exc
    specs = signature_specs(saved)
    _check_signature(specs)
    assets = getattr(saved, "assets", None) or {}
    users = _read_vocab(assets, "vocab/user_id.json")
    items = _read_vocab(assets, "vocab/item_id.json")
    popular = _read_json(assets, "popular_items.json")
    try:
        pop_idx = np.asarray(popular["item_idx"], dtype=np.int32).reshape(-1)
        pop_count = np.asarray(popular["count"], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadError("INVALID_ARGUMENT", f"popular_items.json: {exc}") from None
    if pop_idx.shape != pop_count.shape or (
        pop_idx.size and (pop_idx.min() < 0 or pop_idx.max() >= len(items))
    ):
        raise LoadError("INVALID_ARGUMENT", "popular_items.json: bad item_idx/count arrays")
    indptr, indices = _read_seen(assets, len(users))
    if indices.size and (indices.min() < 0 or indices.max() >= len(items)):
        raise LoadError("INVALID_ARGUMENT", "seen.npz: item index out of range")
    metrics = _read_json(assets, "metrics.json") if "metrics.json" in assets else {}
    return ServedVersion(
        name,
        version,
        path,
        saved,
        specs,
        users,
        items,
        indptr,
        indices,
        pop_idx,
        pop_count,
        metrics,
    )
