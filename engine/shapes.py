"""Static shapes (TF-1's `TensorShape`) and the helpers ops use to infer them.

Every node has `.shape` / `.get_shape()`: a `TensorShape`, a tuple of ints with None for a
dimension not known until a run; `TensorShape(None)` has unknown rank.  An op states its
output shape in `infer_shape(self, *input_shapes)`; when it does not, its shape is unknown.
Inference never raises: an op that can tell a bad shape at build time checks it where it is
built (e.g. `matmul`'s inner dimensions) and raises a ValueError naming the op and the shapes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Dimension", "TensorShape", "broadcast_shape", "as_shape", "unknown_shape"]


def Dimension(value):  # noqa: N802 - TF-1's name; TF-2's compat.v1 dims are plain ints too
    """A dimension: an int, or None when unknown."""
    return None if value is None else int(value)


class TensorShape(tuple):
    """A static shape: ints and None (unknown dims); `TensorShape(None)` has unknown rank."""

    def __new__(cls, dims=None):
        if isinstance(dims, TensorShape):
            return dims
        if dims is None:
            shape = super().__new__(cls, ())
            shape._known = False
            return shape
        if isinstance(dims, (int, np.integer)):
            dims = (dims,)
        shape = super().__new__(cls, (_dim(d) for d in dims))
        shape._known = True
        return shape

    @property
    def rank(self) -> int | None:
        """The number of dimensions, None when unknown."""
        return tuple.__len__(self) if self._known else None

    ndims = rank

    @property
    def dims(self) -> list | None:
        """The dimensions as a list (None when the rank is unknown)."""
        return list(self) if self._known else None

    def __len__(self) -> int:
        if not self._known:
            raise ValueError("Cannot take the length of shape with unknown rank.")
        return tuple.__len__(self)

    def __getitem__(self, key):
        if not self._known:
            return TensorShape(None) if isinstance(key, slice) else None
        item = tuple.__getitem__(self, key)
        return TensorShape(item) if isinstance(key, slice) else item

    def __eq__(self, other) -> bool:
        if isinstance(other, TensorShape) and not (self._known and other._known):
            return self._known == other._known
        if other is None or not self._known:
            return False
        try:
            return tuple(self) == tuple(other)
        except TypeError:
            return False

    __hash__ = tuple.__hash__

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return "TensorShape(None)" if not self._known else f"TensorShape({list(self)})"

    def __str__(self) -> str:
        return "<unknown>" if not self._known else str(tuple(self))

    def as_list(self) -> list:
        """The dimensions as a list; ValueError when the rank is unknown (as TF-1)."""
        if not self._known:
            raise ValueError("as_list() is not defined on an unknown TensorShape.")
        return list(self)

    def is_fully_defined(self) -> bool:
        """Whether the rank and every dimension are known."""
        return self._known and all(d is not None for d in self)

    def num_elements(self) -> int | None:
        """The number of elements, None unless fully defined."""
        return int(np.prod(self, dtype=np.int64)) if self.is_fully_defined() else None

    def is_compatible_with(self, other) -> bool:
        """Whether some concrete shape could match both."""
        other = as_shape(other)
        if not (self._known and other._known):
            return True
        if len(self) != len(other):
            return False
        return all(a is None or b is None or a == b for a, b in zip(self, other, strict=True))

    def merge_with(self, other) -> TensorShape:
        """The shape holding what either knows; ValueError when they conflict."""
        other = as_shape(other)
        if not self.is_compatible_with(other):
            raise ValueError(f"Shapes {self} and {other} are not compatible")
        if not self._known:
            return other
        if not other._known:
            return self
        return TensorShape(a if a is not None else b for a, b in zip(self, other, strict=True))

    def concatenate(self, other) -> TensorShape:
        """This shape's dimensions followed by `other`'s."""
        other = as_shape(other)
        if not (self._known and other._known):
            return TensorShape(None)
        return TensorShape(tuple(self) + tuple(other))

    def with_rank(self, rank: int) -> TensorShape:
        """This shape, checked to have `rank` dimensions."""
        if not self._known:
            return TensorShape([None] * rank)
        if len(self) != rank:
            raise ValueError(f"Shape {self} must have rank {rank}")
        return self


def _dim(d):
    if d is None:
        return None
    d = int(d)
    return None if d < 0 else d


def as_shape(shape) -> TensorShape:
    """`shape` as a TensorShape (a tuple/list with None dims, a TensorShape, or None)."""
    return shape if isinstance(shape, TensorShape) else TensorShape(shape)


def unknown_shape(rank: int | None = None) -> TensorShape:
    """A shape of unknown rank, or of `rank` unknown dimensions."""
    return TensorShape(None if rank is None else [None] * rank)


def broadcast_shape(a, b) -> TensorShape:
    """numpy's broadcast of two static shapes; unknown where either side does not tell."""
    a, b = as_shape(a), as_shape(b)
    if a.rank is None or b.rank is None:
        return TensorShape(None)
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b, strict=True):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        elif x is None or y is None:
            out.append(x if y is None else y)
        else:
            raise ValueError(f"shapes {TensorShape(a)} and {TensorShape(b)} do not broadcast")
    return TensorShape(out)
