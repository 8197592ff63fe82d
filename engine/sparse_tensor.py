"""SparseTensor: TF-1's sparse input (indices, values, dense_shape)."""

from __future__ import annotations

__all__: list[str] = []
