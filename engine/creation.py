"""Creation ops (TF-1 names): zeros, ones, fill, zeros_like, ones_like, range, linspace.

With static arguments they are constants (known shape and value, folded for free); with a
node for the shape (`tf.zeros(tf.shape(x))`) or the bounds they are ops computed per run.
"""

from __future__ import annotations

import builtins

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Constant, Node, Operation
from engine.shape_rules import SameShape, attr_dtype, shape_argument
from engine.shapes import TensorShape

__all__ = [
    "fill",
    "lin_space",
    "linspace",
    "ones",
    "ones_like",
    "range",
    "zeros",
    "zeros_like",
]


class Fill(Operation):
    """An array of shape `dims` (input 0, an int vector) holding `value` (input 1)."""

    op_type = "fill"

    def forward(self, xp, dims, value):
        dims = tuple(int(d) for d in (dims.tolist() if hasattr(dims, "tolist") else dims))
        dtype = attr_dtype(self) or getattr(value, "dtype", None)
        # broadcast + copy: CuPy's full does not take a 0-d device array as the fill value
        return xp.broadcast_to(xp.asarray(value, dtype=dtype), dims).copy()

    def infer_shape(self, dims, value):
        return TensorShape(self.attrs["shape"]) if self.attrs["shape"] is not None else None

    def infer_dtype(self, dims, value):
        return attr_dtype(self) or value


class ZerosLike(SameShape, Operation):
    op_type = "zeros_like"

    def forward(self, xp, x):
        x = xp.asarray(x)
        return xp.zeros(x.shape, dtype=attr_dtype(self) or x.dtype)

    def infer_dtype(self, x):
        return attr_dtype(self) or x


class OnesLike(SameShape, Operation):
    op_type = "ones_like"

    def forward(self, xp, x):
        x = xp.asarray(x)
        return xp.ones(x.shape, dtype=attr_dtype(self) or x.dtype)

    def infer_dtype(self, x):
        return attr_dtype(self) or x


class Range(Operation):
    op_type = "range"

    def forward(self, xp, start, limit, delta):
        return xp.arange(_scalar(start), _scalar(limit), _scalar(delta), dtype=attr_dtype(self))

    def infer_shape(self, *shapes):
        return TensorShape([None])

    def infer_dtype(self, *dtypes):
        return attr_dtype(self)


def _scalar(value):
    return value.item() if hasattr(value, "item") else value


def _filled(shape, value, dtype, name):
    dims, node = shape_argument(shape)
    if node is None:
        return Constant(np.full(dims, value, dtype=dtype), name=name)
    return Fill([node, np.asarray(value, dtype=dtype)], name=name, shape=dims, dtype=_name(dtype))


def _name(dtype):
    return None if dtype is None else np.dtype(dtype).name


def zeros(shape, dtype=np.float32, name=None, layout=None):
    """A tensor of `shape` (a list, or an int vector node) filled with zeros."""
    return _filled(shape, 0, np.dtype(dtype), name or "zeros")


def ones(shape, dtype=np.float32, name=None, layout=None):
    """A tensor of `shape` (a list, or an int vector node) filled with ones."""
    return _filled(shape, 1, np.dtype(dtype), name or "ones")


def fill(dims, value, name=None, layout=None):
    """A tensor of shape `dims` filled with `value` (a scalar or a scalar node); differentiable
    w.r.t. value (the gradient is the sum of the incoming one)."""
    if not isinstance(value, Node):
        array = np.asarray(value)
        if array.dtype == np.float64 and not isinstance(value, np.ndarray):
            array = array.astype(np.float32)  # a Python float is float32, as in TF
        elif array.dtype == np.int64 and not isinstance(value, (np.ndarray, np.generic)):
            array = array.astype(np.int32)
        return _filled(dims, array, array.dtype, name or "Fill")
    shape, node = shape_argument(dims)
    dims = node if node is not None else np.asarray(shape, dtype=np.int32)
    return Fill([dims, value], name=name, shape=shape, dtype=None)


def _like(op_class, constant_value, tensor, dtype, name):
    if not isinstance(tensor, Node):
        array = np.asarray(tensor)
        return Constant(np.full(array.shape, constant_value, dtype=dtype or array.dtype), name=name)
    return op_class([tensor], name=name, dtype=_name(dtype))


def zeros_like(tensor, dtype=None, name=None, optimize=True):
    """Zeros of `tensor`'s shape and (unless `dtype` is given) dtype."""
    return _like(ZerosLike, 0, tensor, dtype, name)


def ones_like(tensor, dtype=None, name=None, optimize=True):
    """Ones of `tensor`'s shape and (unless `dtype` is given) dtype."""
    return _like(OnesLike, 1, tensor, dtype, name)


def range(start, limit=None, delta=1, dtype=None, name="range"):  # noqa: A001 - TF-1's name
    """[start, start + delta, ...) up to `limit` (one argument: [0, start)), TF-1's tf.range.

    The dtype, unless given, is float32 when any bound is a float, else int32 (as TF-1).
    """
    if limit is None:
        start, limit = 0, start
    args = (start, limit, delta)
    if dtype is None:
        dtype = _range_dtype(args)
    dtype = np.dtype(dtype)
    if not builtins.any(isinstance(a, Node) for a in args):
        return Constant(np.arange(*(np.asarray(a).item() for a in args), dtype=dtype), name=name)
    return Range(list(args), name=name, dtype=dtype.name)


_RANGE_DTYPES = [np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.float64)]


def _range_dtype(args):
    # TF-1: the widest of the bounds' dtypes, Python ints as int32 and floats as float32.
    widest = 0
    for a in args:
        if isinstance(a, Node):
            d = a.dtype
        elif isinstance(a, (bool, int)):
            d = np.dtype(np.int32)
        elif isinstance(a, float):
            d = np.dtype(np.float32)
        else:
            d = np.asarray(a).dtype
        if d is not None and np.dtype(d) in _RANGE_DTYPES:
            widest = max(widest, _RANGE_DTYPES.index(np.dtype(d)))
    return _RANGE_DTYPES[widest]


def linspace(start, stop, num, name=None, axis=0):
    """`num` evenly spaced values from start to stop inclusive (float32 for Python numbers)."""
    if builtins.any(isinstance(a, Node) for a in (start, stop, num)):
        raise NotImplementedError("linspace: start, stop and num must be numbers here")
    dtype = np.asarray(start).dtype
    if isinstance(start, float) or dtype.kind != "f":
        dtype = np.float32
    return Constant(np.linspace(start, stop, int(num), axis=axis).astype(dtype), name=name)


lin_space = linspace


@RegisterGradient("fill")
def _fill_grad(op, g):
    return None, g.sum()


NotDifferentiable("zeros_like")
NotDifferentiable("ones_like")
NotDifferentiable("range")
