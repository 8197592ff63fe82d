"""Array ops: concat, reshape, transpose, cast, identity, stop_gradient, with their gradients.

Reductions live in `ops_reduce`, einsum in `ops_einsum`, gather / embedding_lookup in
`ops_gather` (clip_by_value in `clip_ops`); their names are re-exported here
so `tf.*` reaches them.  Axis attrs are stored JSON-able: None, an int, or a list of ints.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.ops_einsum import einsum
from engine.ops_gather import embedding_lookup, gather
from engine.ops_reduce import (
    _axis_arg,  # noqa: F401 - kept importable from here for older callers
    _kept_shape,  # noqa: F401
    cumsum,
    reduce_all,
    reduce_any,
    reduce_logsumexp,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
)
from engine.shape_rules import SameShape, attr_dtype, checked, shape_argument
from engine.shapes import TensorShape, as_shape

__all__ = [
    "cast",
    "concat",
    "cumsum",
    "einsum",
    "embedding_lookup",
    "gather",
    "identity",
    "reduce_all",
    "reduce_any",
    "reduce_logsumexp",
    "reduce_max",
    "reduce_mean",
    "reduce_min",
    "reduce_prod",
    "reduce_sum",
    "reshape",
    "stop_gradient",
    "transpose",
]


class Concat(Operation):
    op_type = "concat"

    def forward(self, xp, *values):
        return xp.concatenate(values, axis=self.axis)

    def infer_shape(self, *shapes):
        shapes = [as_shape(s) for s in shapes]
        known = [s for s in shapes if s.rank is not None]
        if not known:
            return TensorShape(None)
        rank = len(known[0])
        axis = self.attrs["axis"] % max(rank, 1)
        out = [None] * rank
        total = 0
        for shape in known:
            if len(shape) != rank:
                raise ValueError(
                    f"concat {self.name!r}: inputs of ranks {len(shape)} and {rank} cannot be "
                    f"joined (shapes {shape} and {known[0]})"
                )
            for i, d in enumerate(shape):
                if i == axis or d is None:
                    continue
                if out[i] is not None and out[i] != d:
                    raise ValueError(
                        f"concat {self.name!r}: dimension {i} differs between shapes "
                        f"{known[0]} and {shape}"
                    )
                out[i] = d
        for shape in shapes:
            d = shape[axis] if shape.rank is not None else None
            total = None if total is None or d is None else total + d
        out[axis] = total
        return TensorShape(out)


class Reshape(Operation):
    """x reshaped to attrs["shape"]; with a second input (an int vector computed per run,
    e.g. from tf.shape), to that, attrs["shape"] then holding what is known statically."""

    op_type = "reshape"

    def forward(self, xp, x, *shape):
        if shape:
            return xp.reshape(x, tuple(int(d) for d in shape[0].tolist()))
        return xp.reshape(x, self.attrs["shape"])

    def infer_shape(self, x, *shape_input):
        target = self.attrs["shape"]
        if target is None:
            return None
        target = list(target)
        x = as_shape(x)
        if None in target:  # parts only a run tells: -1 cannot be worked out either
            return TensorShape([None if d == -1 else d for d in target])
        if -1 in target:
            total = x.num_elements()
            known = 1
            for d in target:
                known *= 1 if d == -1 else d
            inferred = None if total is None or known == 0 else total // known
            if total is not None and known and total % known:
                raise ValueError(
                    f"reshape {self.name!r}: cannot reshape a tensor of shape {x} "
                    f"({total} elements) into shape {target}"
                )
            target = [inferred if d == -1 else d for d in target]
        elif x.is_fully_defined() and x.num_elements() != int(np.prod(target, dtype=np.int64)):
            raise ValueError(
                f"reshape {self.name!r}: cannot reshape a tensor of shape {x} "
                f"({x.num_elements()} elements) into shape {target}"
            )
        return TensorShape(target)


class Transpose(Operation):
    op_type = "transpose"

    def forward(self, xp, x):
        return xp.transpose(x, self.perm)

    def infer_shape(self, x):
        x = as_shape(x)
        if x.rank is None:
            return x
        perm = self.attrs["perm"]
        if perm is None:
            return TensorShape(tuple(x)[::-1])
        if sorted(perm) != list(range(len(x))):
            raise ValueError(f"transpose {self.name!r}: perm {perm} does not fit shape {x}")
        return TensorShape([x[p] for p in perm])


class Cast(SameShape, Operation):
    op_type = "cast"

    def forward(self, xp, x):
        # asarray: a weakly typed Python-scalar constant has no .astype
        return xp.asarray(x).astype(self.attrs["dtype"], copy=False)

    def infer_dtype(self, x):
        return attr_dtype(self)


class Identity(SameShape, Operation):
    op_type = "identity"

    def forward(self, xp, x):
        return x


class StopGradient(SameShape, Operation):
    op_type = "stop_gradient"

    def forward(self, xp, x):
        return x


def concat(values, axis, name="concat"):
    """Join `values` along `axis`."""
    values = list(values)
    if not values:
        raise ValueError("concat: needs at least one input")
    return checked(Concat(values, name=name, axis=int(axis)))


def reshape(tensor, shape, name=None):
    """`tensor` with a new shape (one dimension may be -1); the shape may hold nodes or be an
    int vector node (`tf.shape(y)`), computed per run."""
    dims, node = shape_argument(shape)
    if dims is not None and dims.count(-1) > 1:
        raise ValueError(f"reshape: at most one dimension may be -1, got {dims}")
    if node is not None:
        return checked(Reshape([tensor, node], name=name, shape=dims))
    return checked(Reshape([tensor], name=name, shape=dims))


def transpose(a, perm=None, name="transpose", conjugate=False):
    """Permute axes (default: reverse them)."""
    perm = None if perm is None else [int(p) for p in perm]
    return checked(Transpose([a], name=name, perm=perm))


def cast(x, dtype, name=None):
    """x converted to `dtype` (TF-1's tf.cast); the gradient flows back to a float input."""
    return Cast([x], name=name, dtype=np.dtype(dtype).name)


def identity(input, name=None):  # noqa: A002 - TF-1's parameter name
    """input unchanged."""
    return Identity([input], name=name)


def stop_gradient(input, name=None):  # noqa: A002 - TF-1's parameter name
    """input unchanged in the forward pass; no gradient flows through it."""
    return StopGradient([input], name=name)


NotDifferentiable("stop_gradient")


@RegisterGradient("concat")
def _concat_grad(op, g):
    axis = op.op.axis
    sizes = [v.shape[axis] for v in op.inputs]
    bounds = []
    total = 0
    for size in sizes[:-1]:
        total += size
        bounds.append(total)
    return tuple(op.xp.split(g, bounds, axis=axis))


@RegisterGradient("reshape")
def _reshape_grad(op, g):
    return (g.reshape(op.inputs[0].shape),) + (None,) * (len(op.inputs) - 1)


@RegisterGradient("transpose")
def _transpose_grad(op, g):
    perm = op.op.perm
    if perm is None:
        return (op.xp.transpose(g),)
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return (op.xp.transpose(g, inverse),)


@RegisterGradient("cast")
def _cast_grad(op, g):
    x = op.inputs[0]
    if getattr(x, "dtype", None) is None or x.dtype.kind != "f":
        return (None,)  # integers, booleans and Python scalars have no gradient, as in TF
    return (g.astype(x.dtype, copy=False),)


@RegisterGradient("identity")
def _identity_grad(op, g):
    return (g,)
