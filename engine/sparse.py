"""Row-sparse gradients: the gradient of gather / embedding_lookup w.r.t. its table."""

from __future__ import annotations

import numpy as np

from engine.backend import scatter_add, segment_sum, to_numpy

__all__ = ["IndexedSlices", "accumulate"]


class IndexedSlices:
    """Rows `values[k]` of a `dense_shape` tensor at row `indices[k]`; indices may repeat."""

    __slots__ = ("dense_shape", "indices", "values")

    def __init__(self, indices, values, dense_shape: tuple[int, ...]) -> None:
        self.indices = indices
        self.values = values
        self.dense_shape = tuple(dense_shape)

    def __repr__(self) -> str:
        return f"IndexedSlices({len(self.indices)} rows of {self.dense_shape})"

    def to_dense(self, xp=np):
        """The dense tensor these slices stand for, duplicate rows summed."""
        out = xp.zeros(self.dense_shape, dtype=self.values.dtype)
        scatter_add(xp, out, self.indices, self.values)
        return out

    def deduplicated(self, xp=np):
        """(unique row indices, summed rows): what an optimizer applies."""
        return segment_sum(xp, self.indices, self.values)

    def to_numpy(self) -> IndexedSlices:
        return IndexedSlices(to_numpy(self.indices), to_numpy(self.values), self.dense_shape)


def accumulate(xp, a, b):
    """a + b where either may be IndexedSlices (slices + slices stays sparse)."""
    a_sparse = type(a) is IndexedSlices
    b_sparse = type(b) is IndexedSlices
    if not a_sparse and not b_sparse:
        return a + b
    if a_sparse and b_sparse:
        return IndexedSlices(
            xp.concatenate((a.indices, b.indices)),
            xp.concatenate((a.values, b.values)),
            a.dense_shape,
        )
    dense, slices = (b, a) if a_sparse else (a, b)
    out = xp.array(dense, dtype=xp.result_type(dense, slices.values), copy=True)
    scatter_add(xp, out, slices.indices, slices.values)
    return out
