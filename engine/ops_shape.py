"""Shape ops: shape, expand_dims, squeeze, stack, unstack, tile, split, pad, ..."""

from __future__ import annotations

__all__: list[str] = []
