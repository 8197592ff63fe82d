"""Indexing ops: argmax, argmin, where, one_hot, slice, gather_nd, boolean_mask, top_k, ..."""

from __future__ import annotations

__all__: list[str] = []
