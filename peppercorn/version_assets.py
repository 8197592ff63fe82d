"""A version's assets, written and read in one place (data-contracts §4).

`encode_assets(VersionContents)` is the only writer of a version's assets and `load_files`
the only reader: it verifies the checksums (the engine's saved format), loads the graph, and
checks and decodes every asset into a typed `LoadedVersion`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peppercorn.finite import non_finite_report
from peppercorn.loaded_version import (
    HISTORY_INPUT,
    REQUIRED_INPUTS,
    REQUIRED_OUTPUT,
    SERVING_SIGNATURE,
    USER_EMBEDDING,
    LoadedVersion,
    SignatureSpec,
    TensorSpec,
    VersionError,
    Vocab,
)
from peppercorn.retrieval import RetrievalAssets, encode_retrieval, read_retrieval

__all__ = ["HISTORY_ASSET", "VersionContents", "encode_assets", "load_files"]

HISTORY_ASSET = "history.npz"


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
    # CSR of each user's history, newest first, at most L items (a model with a history
    # input only): what serving feeds a client that sends only user and item ids.
    history_indptr: np.ndarray | None = None
    history_indices: np.ndarray | None = None
    # A retrieval model's item vectors, ANN index and metadata (peppercorn.retrieval).
    retrieval: RetrievalAssets | None = None


# ---- writing ------------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode()


def encode_assets(contents: VersionContents) -> dict[str, bytes]:
    """The §4 `assets/` files of `contents`, as relative path -> bytes."""
    assets = {f"vocab/{name}.json": _json_bytes(v) for name, v in contents.vocabs.items()}
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
            "seen.npz": _csr_bytes(contents.seen_indptr, contents.seen_indices),
            **contents.report,
        }
    )
    if contents.history_indptr is not None:
        assets[HISTORY_ASSET] = _csr_bytes(contents.history_indptr, contents.history_indices)
    if contents.retrieval is not None:
        assets.update(encode_retrieval(contents.retrieval))
    return assets


def _csr_bytes(indptr: np.ndarray, indices: np.ndarray) -> bytes:
    # The layout `_read_csr` reads back.
    buffer = io.BytesIO()
    np.savez(buffer, indptr=np.asarray(indptr, np.int64), indices=np.asarray(indices, np.int32))
    return buffer.getvalue()


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


def _read_csr(assets: Mapping[str, bytes], rel: str, n_users: int, n_items: int):
    try:
        with np.load(io.BytesIO(_asset(assets, rel)), allow_pickle=False) as npz:
            indptr, indices = npz["indptr"].astype(np.int64), npz["indices"].astype(np.int32)
    except (OSError, ValueError, KeyError) as exc:
        raise VersionError("DATA_LOSS", f"unreadable asset {rel}: {exc}") from None
    if (
        indptr.ndim != 1
        or indptr.shape[0] < 1
        or indptr.shape[0] > n_users + 1
        or indptr[-1] != indices.shape[0]
        or np.any(np.diff(indptr) < 0)
    ):
        raise VersionError("INVALID_ARGUMENT", f"{rel}: indptr does not match indices/users")
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        raise VersionError("INVALID_ARGUMENT", f"{rel}: item index out of range")
    return indptr, indices


def _read_history(assets: Mapping[str, bytes], specs, n_users: int, n_items: int):
    """The history CSR and L for a signature with a history input; (None, None, 0) without."""
    spec = specs[SERVING_SIGNATURE].inputs.get(HISTORY_INPUT)
    if spec is None:
        return None, None, 0
    if not spec.dtype.startswith("int") or len(spec.shape) != 2 or spec.shape[1] < 1:
        raise VersionError(
            "INVALID_ARGUMENT",
            f"{SERVING_SIGNATURE}: input {HISTORY_INPUT} must be integer [-1, L], got "
            f"{spec.dtype} {list(spec.shape)}",
        )
    indptr, indices = _read_csr(assets, HISTORY_ASSET, n_users, n_items)
    length = int(spec.shape[1])
    if indptr.size > 1 and np.diff(indptr).max() > length:
        raise VersionError("INVALID_ARGUMENT", f"{HISTORY_ASSET}: a row holds more than {length}")
    return indptr, indices, length


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
    weights = {v.name: saved.session.get_value(v) for v in saved.graph.variables}
    problem = non_finite_report(weights)
    if problem is not None:
        raise VersionError("INVALID_ARGUMENT", f"non-finite weights: {problem}")
    specs = _signature_specs(saved)
    assets = saved.assets
    vocabs = _read_vocabs(assets)
    n_users, n_items = len(vocabs["user_id"]), len(vocabs["item_id"])
    popular_idx, popular_count = _read_popular(assets, n_items)
    indptr, indices = _read_csr(assets, "seen.npz", n_users, n_items)
    history_indptr, history_indices, history_length = _read_history(assets, specs, n_users, n_items)
    try:
        retrieval = read_retrieval(assets, n_items)
    except ValueError as exc:
        raise VersionError("INVALID_ARGUMENT", str(exc)) from None
    if (retrieval is None) != (USER_EMBEDDING not in specs):
        raise VersionError(
            "INVALID_ARGUMENT",
            f"a version with a {USER_EMBEDDING!r} signature needs retrieval/ assets, and only "
            "such a version has them",
        )
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
        history_indptr,
        history_indices,
        history_length,
        retrieval,
    )
