"""`x[i]`, `x[:, i]`, `x[i:j]` with scalar integer nodes among the indices.

TF-1 builds these as a strided_slice whose begin/end are tensors; here the op keeps the
index's structure in an attr (`spec`) and takes the scalar nodes as extra inputs, read at run
time.  The gradient is dense (zeros with the incoming gradient written in), as TF-1's is.
"""

from __future__ import annotations

import operator

import numpy as np

from engine.autodiff import RegisterGradient
from engine.graph import Node, Operation
from engine.shape_helpers import format_shape, known_dtype, static_shape_of

__all__ = ["dynamic_getitem"]

_INDEX_HELP = (
    "Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) and scalar "
    "tf.int32/tf.int64 tensors are valid indices"
)


def _resolve(part, values):
    """A spec entry's int: a literal, None, or {"input": i} (the i-th index node's value)."""
    if isinstance(part, dict):
        return int(values[part["input"]])
    return part


def _run_key(spec, values) -> tuple:
    key = []
    for entry in spec:
        if entry == "...":
            key.append(Ellipsis)
        elif entry == "newaxis":
            key.append(None)
        elif entry[0] == "index":
            key.append(_resolve(entry[1], values))
        else:
            key.append(slice(*(_resolve(p, values) for p in entry[1:])))
    return tuple(key)


class StridedSliceDynamic(Operation):
    """input[key] where some of key's ints or slice bounds are scalar nodes (inputs 1..)."""

    op_type = "strided_slice_dynamic"

    def forward(self, xp, x, *index_values):
        return x[_run_key(self.attrs["spec"], index_values)]

    def infer_dtype(self, dtype, *index_dtypes):
        return known_dtype(dtype)

    def infer_shape(self, shape, *index_shapes):
        if shape.rank is None:
            return None
        spec = self.attrs["spec"]
        consumed = sum(1 for e in spec if e not in ("...", "newaxis"))
        if consumed > shape.rank:
            return None
        dims, out, pos = list(shape), [], 0
        for entry in spec:
            if entry == "...":
                covered = len(dims) - consumed
                out.extend(dims[pos : pos + covered])
                pos += covered
            elif entry == "newaxis":
                out.append(1)
            elif entry[0] == "index":
                pos += 1
            else:
                bounds = entry[1:]
                known = not any(isinstance(p, dict) for p in bounds) and dims[pos] is not None
                out.append(len(range(*slice(*bounds).indices(dims[pos]))) if known else None)
                pos += 1
        return [*out, *dims[pos:]]


@RegisterGradient("strided_slice_dynamic")
def _strided_slice_dynamic_grad(op, g):
    x, *index_values = op.inputs
    full = op.xp.zeros(x.shape, dtype=g.dtype)
    full[_run_key(op.op.attrs["spec"], index_values)] = g
    return (full, *([None] * len(index_values)))


def _part(value, index_nodes: list):
    """A JSON-able spec part for an int, None or a scalar integer node (appended to inputs)."""
    if value is None:
        return None
    if isinstance(value, Node):
        shape, dtype = static_shape_of(value), value.dtype
        if shape.rank not in (None, 0) or (dtype is not None and dtype.kind not in "iu"):
            raise TypeError(
                f"{_INDEX_HELP}; got the node {value.name!r} of shape {format_shape(shape)} "
                f"and dtype {dtype}"
            )
        index_nodes.append(value)
        return {"input": len(index_nodes) - 1}
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_INDEX_HELP}, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{_INDEX_HELP}, got {value!r}") from None


def dynamic_getitem(node, key: tuple, name: str = "strided_slice"):
    """`node[key]` where `key` holds scalar integer nodes (as ints or slice bounds)."""
    spec, index_nodes = [], []
    for k in key:
        if k is Ellipsis:
            spec.append("...")
        elif k is None:
            spec.append("newaxis")
        elif isinstance(k, slice):
            step = _part(k.step, index_nodes)
            if step == 0:
                raise ValueError("slice step cannot be zero")
            spec.append(["slice", _part(k.start, index_nodes), _part(k.stop, index_nodes), step])
        else:
            spec.append(["index", _part(k, index_nodes)])
    if spec.count("...") > 1:
        raise ValueError("an index can only have a single ellipsis ('...')")
    rank = static_shape_of(node).rank
    consumed = sum(1 for e in spec if e not in ("...", "newaxis"))
    if rank is not None and consumed > rank:
        raise ValueError(f"strided_slice: {consumed} indices for a tensor of rank {rank}")
    return StridedSliceDynamic([node, *index_nodes], name=name, spec=spec)
