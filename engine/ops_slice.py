"""Slicing: strided_slice (what `x[...]` builds) and slice, with the gradient.

`strided_slice` keeps TF-1's attrs (begin, end, strides and the five bit masks) and runs as
one numpy basic index, so `x[:, 0]`, `x[1:3]`, `x[..., None]`, `x[:, -1]`, `x[::-2]` cost a
view.  Its gradient writes the incoming gradient into zeros of the input's shape.
"""

from __future__ import annotations

import builtins
import operator
from functools import cached_property

from engine.autodiff import RegisterGradient
from engine.graph import Constant, Node, Operation
from engine.shape_helpers import int_list, static_int, static_shape_of
from engine.shapes import TensorShape

__all__ = ["getitem", "newaxis", "slice", "strided_slice"]

newaxis = None
_py_slice = builtins.slice  # this module's `slice` is TF-1's

_INDEX_HELP = "Only integers, slices (`:`), ellipsis (`...`), tf.newaxis (`None`) are valid indices"


def _index_key(begin, end, strides, begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink):
    """The numpy basic index TF's strided-slice attrs stand for."""
    key = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        bit = 1 << i
        if ellipsis_mask & bit:
            key.append(Ellipsis)
        elif new_axis_mask & bit:
            key.append(None)
        elif shrink & bit:
            key.append(int(b))
        else:
            key.append(_py_slice(None if begin_mask & bit else b, None if end_mask & bit else e, s))
    return tuple(key)


def _key_shape(shape: TensorShape, key: tuple, what: str, strict: bool) -> TensorShape:
    """The static shape of `value[key]` for a value of `shape` (strict: ValueError on an index
    the known shape cannot take, as TF-1 does at build time)."""
    if shape.rank is None:
        return TensorShape(None)
    dims = list(shape)
    consumed = sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > len(dims):
        if strict:
            raise ValueError(f"{what}: {consumed} indices for a tensor of rank {len(dims)}")
        return TensorShape(None)
    out, pos = [], 0
    for k in key:
        if k is Ellipsis:
            covered = len(dims) - consumed
            out.extend(dims[pos : pos + covered])
            pos += covered
        elif k is None:
            out.append(1)
        elif isinstance(k, int):
            d = dims[pos]
            if strict and d is not None and not -d <= k < d:
                raise ValueError(
                    f"{what}: index {k} is out of bounds for dimension {pos} of size {d}"
                )
            pos += 1
        else:
            d = dims[pos]
            pos += 1
            out.append(None if d is None else len(range(*k.indices(d))))
    out.extend(dims[pos:])
    return TensorShape(out)


class StridedSlice(Operation):
    """input[begin:end:strides] with TF-1's masks; a numpy basic index at run time."""

    op_type = "strided_slice"

    @cached_property
    def key(self) -> tuple:
        a = self.attrs
        return _index_key(
            a["begin"], a["end"], a["strides"], a["begin_mask"], a["end_mask"],
            a["ellipsis_mask"], a["new_axis_mask"], a["shrink_axis_mask"],
        )  # fmt: skip

    def forward(self, xp, x):
        return x[self.key]

    def infer_shape(self, shape):
        return _key_shape(shape, self.key, self.name, strict=False)


@RegisterGradient("strided_slice")
def _strided_slice_grad(op, g):
    x = op.inputs[0]
    full = op.xp.zeros(x.shape, dtype=g.dtype)
    full[op.op.key] = g
    return (full,)


def strided_slice(
    input_,
    begin,
    end,
    strides=None,
    begin_mask=0,
    end_mask=0,
    ellipsis_mask=0,
    new_axis_mask=0,
    shrink_axis_mask=0,
    var=None,
    name=None,
):
    """input_[begin:end:strides] per dimension, with TF-1's bit masks (bit i: entry i):
    begin_mask/end_mask ignore begin[i]/end[i], ellipsis_mask is `...`, new_axis_mask inserts
    a dimension of 1, shrink_axis_mask takes index begin[i] and drops the dimension."""
    begin = int_list(begin, "strided_slice: begin")
    end = int_list(end, "strided_slice: end")
    strides = [1] * len(begin) if strides is None else int_list(strides, "strided_slice: strides")
    if not len(begin) == len(end) == len(strides):
        raise ValueError("strided_slice: begin, end and strides must have the same length")
    if 0 in strides:
        raise ValueError("strided_slice: strides must be non-zero")
    if bin(int(ellipsis_mask)).count("1") > 1:
        raise ValueError("strided_slice: at most one ellipsis (ellipsis_mask has several bits)")
    attrs = dict(
        begin=begin,
        end=end,
        strides=strides,
        begin_mask=int(begin_mask),
        end_mask=int(end_mask),
        ellipsis_mask=int(ellipsis_mask),
        new_axis_mask=int(new_axis_mask),
        shrink_axis_mask=int(shrink_axis_mask),
    )
    key = _index_key(*attrs.values())
    _key_shape(static_shape_of(input_), key, name or "strided_slice", strict=True)
    return StridedSlice([input_], name=name, **attrs)


def strided_slice_attrs(key) -> dict:
    """TF-1 strided-slice attrs for a Python index (ints, slices, `...`, None)."""
    if not isinstance(key, tuple):
        key = (key,)
    begin, end, strides = [], [], []
    masks = dict(begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=0)
    for i, k in enumerate(key):
        bit = 1 << i
        if k is Ellipsis:
            if masks["ellipsis_mask"]:
                raise ValueError("an index can only have a single ellipsis ('...')")
            masks["ellipsis_mask"] |= bit
            begin.append(0), end.append(0), strides.append(1)
        elif k is None:
            masks["new_axis_mask"] |= bit
            begin.append(0), end.append(0), strides.append(1)
        elif isinstance(k, _py_slice):
            parts = (k.start, k.stop, k.step)
            if any(p is not None and not _is_int(p) for p in parts):
                raise TypeError(f"{_INDEX_HELP}; slice bounds must be Python ints, got {k!r}")
            step = 1 if k.step is None else int(k.step)
            if step == 0:
                raise ValueError("slice step cannot be zero")
            if k.start is None:
                masks["begin_mask"] |= bit
            if k.stop is None:
                masks["end_mask"] |= bit
            begin.append(0 if k.start is None else int(k.start))
            end.append(0 if k.stop is None else int(k.stop))
            strides.append(step)
        elif _is_int(k):
            masks["shrink_axis_mask"] |= bit
            begin.append(int(k)), end.append(int(k) + 1), strides.append(1)
        else:
            raise TypeError(f"{_INDEX_HELP}, got {k!r}")
    return dict(begin=begin, end=end, strides=strides, **masks)


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)  # ints and numpy integers; not floats, nodes, lists
    except TypeError:
        return False
    return True


def getitem(node, key):
    """`node[key]` as TF-1 builds it: a strided_slice (ints drop a dimension, None adds one);
    scalar integer nodes may stand for ints and slice bounds (`x[:, i]`, `x[i:j]`)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(_holds_node(k) for k in key):
        from engine.ops_slice_dynamic import dynamic_getitem

        return dynamic_getitem(node, key)
    return strided_slice(node, **strided_slice_attrs(key), name="strided_slice")


def _holds_node(k) -> bool:
    if isinstance(k, _py_slice):
        return any(isinstance(p, Node) for p in (k.start, k.stop, k.step))
    return isinstance(k, Node)


def slice(input_, begin, size, name=None):  # noqa: A001 - TF-1's name
    """The block of `input_` starting at `begin` of extent `size` (-1: to the end); begin and
    size may hold scalar nodes or be int vector nodes (a node size is taken as not -1)."""
    rank = static_shape_of(input_).rank
    begin = _slice_entries(begin, rank, "slice: begin")
    size = _slice_entries(size, rank, "slice: size")
    if len(begin) != len(size):
        raise ValueError(f"slice: begin {begin} and size {size} must have the same length")
    if any(isinstance(v, int) and v < 0 for v in begin):
        raise ValueError(f"slice: begin must be non-negative, got {begin}")
    if any(isinstance(v, Node) for v in begin + size):
        from engine.ops_slice_dynamic import dynamic_getitem

        key = tuple(
            _py_slice(b, None if isinstance(n, int) and n == -1 else b + n)
            for b, n in zip(begin, size, strict=True)
        )
        out = dynamic_getitem(input_, key, name=name or "Slice")
    else:
        end_mask = sum(1 << i for i, n in enumerate(size) if n == -1)
        end = [b + n if n != -1 else 0 for b, n in zip(begin, size, strict=True)]
        out = strided_slice(input_, begin, end, end_mask=end_mask, name=name or "Slice")
    # TF-1's Slice knows every size but -1 even on unknown dimensions (it refuses, at run
    # time, a block that does not fit; strided_slice would clip).
    shape = out.shape
    if shape.rank is not None:
        known = [static_int(n) if isinstance(n, Node) else n for n in size]
        out.set_shape([d if n is None or n == -1 else n for d, n in zip(shape, known, strict=True)])
    return out


def _slice_entries(value, rank: int | None, what: str) -> list:
    """Ints and scalar nodes: a list as given, or a vector node split into its entries (one
    per dimension of the input: its length, else the input's rank, must be known)."""
    if isinstance(value, Node) and not isinstance(value, Constant):
        shape = static_shape_of(value)
        length = shape[0] if shape.rank == 1 and shape[0] is not None else rank
        if shape.rank not in (None, 1) or length is None:
            raise ValueError(f"{what}: a node must be a vector of known length, got {shape}")
        return [getitem(value, i) for i in range(length)]
    if isinstance(value, (list, tuple)):
        return [
            v if isinstance(v, Node) and not isinstance(v, Constant) else int_list(v, what)[0]
            for v in value
        ]
    return int_list(value, what)
