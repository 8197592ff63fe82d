"""Creation ops: zeros, ones, fill, range, ..._like (TF-1 names)."""

from __future__ import annotations

__all__: list[str] = []
