"""SparseTensor: TF-1's sparse input (indices, values, dense_shape), its placeholder and its
conversion to a dense tensor.

A SparseTensor is a Python object holding three nodes, as in TF-1.  Feeding a
`sparse_placeholder` feeds its three nodes: `{sp.indices: ..., sp.values: ...,
sp.dense_shape: ...}`, or `expand_sparse_feeds({sp: SparseTensorValue(...)})` does that.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from engine.autodiff import RegisterGradient
from engine.graph import Constant, Node, Operation, as_node, get_default_graph, placeholder
from engine.shapes import TensorShape

__all__ = [
    "SparseTensor",
    "SparseTensorValue",
    "sparse_placeholder",
    "sparse_tensor_to_dense",
]

SparseTensorValue = namedtuple("SparseTensorValue", ["indices", "values", "dense_shape"])
SparseTensorValue.__doc__ = "A SparseTensor's value: numpy indices [n, rank], values [n], shape."


def _known_dims(node) -> list | None:
    """dense_shape's dims when it is a constant (None where negative), else None."""
    if isinstance(node, Constant):
        return [None if d < 0 else int(d) for d in np.asarray(node.value).reshape(-1)]
    return None


class SparseTensor:
    """values[k] at position indices[k] of a dense_shape tensor; elsewhere zero."""

    def __init__(self, indices, values, dense_shape) -> None:
        nodes = [c for c in (indices, values, dense_shape) if isinstance(c, Node)]
        graph = nodes[0].graph if nodes else get_default_graph()
        self.indices = indices if isinstance(indices, Node) else _int64(indices, graph)
        self.values = as_node(values, graph)
        self.dense_shape = (
            dense_shape if isinstance(dense_shape, Node) else _int64(dense_shape, graph)
        )
        self.graph = graph

    @classmethod
    def from_value(cls, value) -> SparseTensor:
        """A constant SparseTensor from a SparseTensorValue."""
        return cls(value.indices, value.values, value.dense_shape)

    @property
    def dtype(self):
        """The values' dtype."""
        return getattr(self.values, "dtype", None)

    @property
    def shape(self) -> TensorShape:
        """The dense shape as far as it is known before a run."""
        dims = _known_dims(self.dense_shape)
        if dims is not None:
            return TensorShape(dims)
        shape_of_shape = getattr(self.dense_shape, "shape", None)
        if shape_of_shape is not None and len(shape_of_shape) == 1:
            rank = shape_of_shape[0]
            return TensorShape(None if rank is None else [None] * rank)
        return TensorShape(None)

    def get_shape(self) -> TensorShape:
        """TF-1's name for `.shape`."""
        return self.shape

    def eval(self, session, feed_dict=None) -> SparseTensorValue:
        """This tensor's value in `session` as a SparseTensorValue."""
        parts = session.run([self.indices, self.values, self.dense_shape], feed_dict)
        return SparseTensorValue(*parts)

    def __repr__(self) -> str:
        return (
            f"SparseTensor(indices={self.indices.name!r}, values={self.values.name!r}, "
            f"dense_shape={self.dense_shape.name!r})"
        )


def _int64(value, graph) -> Constant:
    return Constant(np.asarray(value, dtype=np.int64), graph=graph)


def sparse_placeholder(dtype, shape=None, name=None) -> SparseTensor:
    """A SparseTensor of three placeholders (indices int64 [n, rank], values [n], dense_shape
    int64 [rank]); with `shape` given (None / -1 for unknown dims), dense_shape defaults to it
    and may still be fed."""
    prefix = name or "sparse_placeholder"
    if shape is None:
        rank = None
        dense_shape = placeholder(np.int64, [None], name=f"{prefix}/shape")
    else:
        dims = [-1 if d is None else int(d) for d in shape]
        rank = len(dims)
        dense_shape = Constant(np.asarray(dims, dtype=np.int64), name=f"{prefix}/shape")
    indices = placeholder(np.int64, [None, rank], name=f"{prefix}/indices")
    values = placeholder(dtype, [None], name=f"{prefix}/values")
    return SparseTensor(indices, values, dense_shape)


def expand_sparse_feeds(feed_dict):
    """`feed_dict` with each SparseTensor key (fed a SparseTensorValue or a 3-tuple) replaced
    by its three component nodes; other entries unchanged."""
    if not feed_dict or not any(isinstance(k, SparseTensor) for k in feed_dict):
        return feed_dict
    out = {}
    for key, value in feed_dict.items():
        if isinstance(key, SparseTensor):
            indices, values, dense_shape = value
            out[key.indices] = np.asarray(indices, dtype=np.int64)
            out[key.values] = values
            out[key.dense_shape] = np.asarray(dense_shape, dtype=np.int64)
        else:
            out[key] = value
    return out


class SparseToDense(Operation):
    """The dense tensor of (indices, values, dense_shape), `default` elsewhere."""

    op_type = "sparse_tensor_to_dense"
    static_dims = None

    def forward(self, xp, indices, values, dense_shape, default):
        dims = tuple(int(d) for d in xp.asarray(dense_shape).tolist())
        values = xp.asarray(values)
        out = xp.full(dims, default, dtype=values.dtype)
        indices = xp.asarray(indices).astype(np.int64)
        if indices.size:
            out[tuple(indices.T)] = values
        return out

    def infer_shape(self, indices, values, dense_shape, default):
        if self.static_dims is not None:
            return TensorShape(self.static_dims)
        if dense_shape.rank == 1 and dense_shape[0] is not None:
            return TensorShape([None] * dense_shape[0])
        return TensorShape(None)

    def infer_dtype(self, indices_dtype, values_dtype, *rest):
        return values_dtype


def sparse_tensor_to_dense(sp_input, default_value=None, validate_indices=True, name=None):
    """The dense tensor of `sp_input`, `default_value` (default 0) where it has no value."""
    if isinstance(sp_input, SparseTensorValue):
        sp_input = SparseTensor.from_value(sp_input)
    if not isinstance(sp_input, SparseTensor):
        raise TypeError(f"sparse_tensor_to_dense: expected a SparseTensor, got {sp_input!r}")
    default = 0 if default_value is None else default_value
    return SparseToDense(
        [sp_input.indices, sp_input.values, sp_input.dense_shape, default],
        name=name,
        static_dims=_known_dims(sp_input.dense_shape),
    )


@RegisterGradient("sparse_tensor_to_dense")
def _sparse_to_dense_grad(op, g):
    xp = op.xp
    indices = xp.asarray(op.inputs[0]).astype(np.int64)
    picked = g[tuple(indices.T)] if indices.size else g.reshape(-1)[:0]
    grad_default = None
    if op.need[3]:
        grad_default = g.sum() - picked.sum()
    return None, picked, None, grad_default
