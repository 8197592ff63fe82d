"""A retrieval model's serving side: its item vectors, their ANN index and items added live.

A two-tower version (`training.models.two_tower`) holds, beside its graph, `retrieval/`:
`item_vectors.npz` (float32 [n_items, d], L2-normalised, row 0 the unknown item),
`index.faiss` (the ANN index over rows 1.., in faiss's own binary format) and
`retrieval.json` (`dim`, `temperature`, the item tower's `content` columns, the index's
description). `encode_retrieval` writes them and `read_retrieval` reads and verifies them:
the index must hold every item, answer in the vectors' dimension, and find what an exact
search finds on a sample of queries, or the version is refused.

Items created after training (a new live room) are added with the vector the item tower
computes from their content: they get indices from n_items on, kept here, and go into the
live index without a rebuild. The ranker and the vocabularies do not know them.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from peppercorn.ann import AnnIndex, AnnIndexError

__all__ = [
    "RETRIEVAL_ASSETS",
    "ContentError",
    "Retrieval",
    "RetrievalAssets",
    "encode_retrieval",
    "read_retrieval",
]

RETRIEVAL_ASSETS = (
    "retrieval/item_vectors.npz",
    "retrieval/index.faiss",
    "retrieval/retrieval.json",
)
# Request keys an item's content may use for each content vocabulary (the raw log's names).
_CONTENT_KEYS = {"category": ("category", "categories"), "tag": ("tags", "tag")}


class ContentError(ValueError):
    """Item content that cannot be encoded; the message names the item and the field."""


@dataclass
class RetrievalAssets:
    """What the exporter hands over for `retrieval/`."""

    item_vectors: np.ndarray
    index: bytes
    meta: dict[str, Any]


def encode_retrieval(assets: RetrievalAssets) -> dict[str, bytes]:
    """The `retrieval/` files as relative path -> bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, vectors=np.asarray(assets.item_vectors, np.float32))
    meta = json.dumps(assets.meta, indent=2, sort_keys=True, allow_nan=False).encode()
    vectors, index, meta_rel = RETRIEVAL_ASSETS
    return {vectors: buffer.getvalue(), index: assets.index, meta_rel: meta}


@dataclass
class Retrieval:
    """Item vectors, their ANN index, and the items added since the version was loaded."""

    vectors: np.ndarray  # [n_items, d]
    index: AnnIndex
    temperature: float
    content: list[dict[str, Any]]  # the item tower's content columns: name, vocab, width
    added: dict[str, int] = field(default_factory=dict)  # raw id -> index >= n_items
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def n_items(self) -> int:
        """Items the version was trained with (index space of the vocabulary)."""
        return int(self.vectors.shape[0])

    def search(
        self, queries: np.ndarray, n: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `n` items of highest inner product per query, leaving out the indices in
        `exclude`: (indices, cosine scores)."""
        return self.index.search(np.asarray(queries, np.float32), n, exclude=exclude)

    def content_matrix(self, vocabs: dict, records: list[tuple[str, dict]]) -> np.ndarray:
        """[len(records), width]: each (raw id, content) as the item tower's content input.

        A content dict names the category (`category` or `categories`) and tags (`tags`);
        a token the vocabulary does not know counts as the unknown token, whose column is 0.
        """
        width = sum(int(c["width"]) for c in self.content)
        out = np.zeros((len(records), max(width, 1)), np.float32)
        if not self.content:
            out[:] = 1.0  # a tower trained without content reads one constant column
            return out
        for row, (raw_id, record) in enumerate(records):
            if not isinstance(record, dict):
                raise ContentError(f"item {raw_id!r}: content must be an object")
            start = 0
            for column in self.content:
                keys = _CONTENT_KEYS.get(column["vocab"], (column["vocab"],))
                value = next((record[k] for k in keys if k in record), None)
                tokens = [value] if isinstance(value, str) else value
                if tokens is None:
                    tokens = []
                if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                    raise ContentError(
                        f"item {raw_id!r}: content field {keys[0]!r} must be a string or a list "
                        "of strings"
                    )
                vocab = vocabs.get(column["vocab"])
                for token in tokens:
                    idx = vocab.lookup(token) if vocab is not None else 0
                    if 0 < idx < int(column["width"]):
                        out[row, start + idx] = 1.0
                start += int(column["width"])
            if not out[row].any():
                fields = [k for c in self.content for k in _CONTENT_KEYS.get(c["vocab"], ())]
                raise ContentError(
                    f"item {raw_id!r}: no known content (a category or tags the model knows, "
                    f"in fields {fields})"
                )
        return out

    def add(self, raw_ids: list[str], vectors: np.ndarray) -> np.ndarray:
        """Add (or replace) items created after training; their indices (>= n_items)."""
        vectors = np.asarray(vectors, np.float32)
        with self._lock:
            indices = []
            for raw in raw_ids:  # a raw id added before keeps its index (the index replaces it)
                indices.append(self.added.setdefault(raw, self.n_items + len(self.added)))
            indices = np.asarray(indices, np.int64)
            self.index.add(vectors, indices)
        return indices

    def raw_of_added(self) -> dict[int, str]:
        """Index -> raw id of the added items."""
        with self._lock:
            return {i: raw for raw, i in self.added.items()}


def read_retrieval(assets: dict[str, bytes], n_items: int) -> Retrieval | None:
    """The verified `retrieval/` of a version, or None when it has none; ValueError naming
    the problem when it is incomplete, unreadable or does not match the vectors."""
    present = [rel for rel in RETRIEVAL_ASSETS if rel in assets]
    if not present:
        return None
    if len(present) != len(RETRIEVAL_ASSETS):
        missing = sorted(set(RETRIEVAL_ASSETS) - set(present))
        raise ValueError(f"incomplete retrieval assets: missing {missing}")
    vectors_rel, index_rel, meta_rel = RETRIEVAL_ASSETS
    try:
        with np.load(io.BytesIO(assets[vectors_rel]), allow_pickle=False) as npz:
            vectors = np.asarray(npz["vectors"], np.float32)
        meta = json.loads(assets[meta_rel])
        dim, temperature = int(meta["dim"]), float(meta["temperature"])
        content = list(meta.get("content", []))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"unreadable retrieval assets: {exc}") from None
    if vectors.ndim != 2 or vectors.shape != (n_items, dim):
        raise ValueError(
            f"{vectors_rel}: expected [{n_items}, {dim}] (items x dim), got {list(vectors.shape)}"
        )
    if not np.isfinite(vectors).all():
        raise ValueError(f"{vectors_rel}: non-finite item vectors")
    try:
        index = AnnIndex.from_bytes(assets[index_rel], dim=dim, count=n_items - 1)
        index.verify(vectors[1:], np.arange(1, n_items, dtype=np.int64))
    except AnnIndexError as exc:
        raise ValueError(f"{index_rel}: {exc}") from None
    return Retrieval(vectors, index, temperature, content)
