"""Reductions (TF-1 `reduce_*` with their aliases) and cumsum, with their gradients.

Axis attrs are stored JSON-able: None, an int, or a list of ints.  Re-exported by
`ops_array`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.shape_rules import BoolOutput, SameShape, reduced_shape

__all__ = [
    "cumsum",
    "reduce_all",
    "reduce_any",
    "reduce_logsumexp",
    "reduce_max",
    "reduce_mean",
    "reduce_min",
    "reduce_prod",
    "reduce_sum",
]


def _axis_attr(axis):
    if axis is None or isinstance(axis, int):
        return axis
    if hasattr(axis, "__index__"):  # a numpy integer
        return int(axis)
    return [int(a) for a in axis]


def _axis_arg(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _kept_shape(shape, axis):
    """`shape` with the reduced axes set to 1 (the keepdims=True result shape)."""
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, list) else [axis]
    kept = list(shape)
    for a in axes:
        kept[a % len(shape)] = 1
    return tuple(kept)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


class _Reduction:
    """Mixin: the static shape of a reduction over attrs `axis` / `keepdims`."""

    def infer_shape(self, x):
        return reduced_shape(x, self.attrs["axis"], self.attrs["keepdims"])


def _integer_kind(x) -> bool:
    return x.dtype.kind in "iu"


class ReduceSum(_Reduction, Operation):
    op_type = "reduce_sum"

    def forward(self, xp, x):
        x = xp.asarray(x)  # a weakly typed Python-scalar constant has no .sum
        dtype = x.dtype if _integer_kind(x) else None  # numpy widens int32 sums; TF does not
        return x.sum(axis=_axis_arg(self.axis), keepdims=self.keepdims, dtype=dtype)


class ReduceMean(_Reduction, Operation):
    op_type = "reduce_mean"

    def forward(self, xp, x):
        x = xp.asarray(x)
        mean = x.mean(axis=_axis_arg(self.axis), keepdims=self.keepdims)
        if _integer_kind(x):  # TF's integer mean truncates and keeps the dtype
            return xp.trunc(mean).astype(x.dtype)
        return mean


class ReduceMax(_Reduction, Operation):
    op_type = "reduce_max"

    def forward(self, xp, x):
        return xp.asarray(x).max(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceMin(_Reduction, Operation):
    op_type = "reduce_min"

    def forward(self, xp, x):
        return xp.asarray(x).min(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceProd(_Reduction, Operation):
    op_type = "reduce_prod"

    def forward(self, xp, x):
        x = xp.asarray(x)
        dtype = x.dtype if _integer_kind(x) else None
        return x.prod(axis=_axis_arg(self.axis), keepdims=self.keepdims, dtype=dtype)


class ReduceAny(BoolOutput, _Reduction, Operation):
    op_type = "reduce_any"

    def forward(self, xp, x):
        return xp.asarray(x).any(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceAll(BoolOutput, _Reduction, Operation):
    op_type = "reduce_all"

    def forward(self, xp, x):
        return xp.asarray(x).all(axis=_axis_arg(self.axis), keepdims=self.keepdims)


class ReduceLogSumExp(_Reduction, Operation):
    op_type = "reduce_logsumexp"

    def forward(self, xp, x):
        x = xp.asarray(x)
        axis = _axis_arg(self.axis)
        peak = x.max(axis=axis, keepdims=True)
        peak = xp.where(xp.isfinite(peak), peak, 0)  # all -inf rows give -inf, not nan
        out = xp.log(xp.exp(x - peak).sum(axis=axis, keepdims=True)) + peak
        if not self.keepdims:
            out = out.reshape(tuple(reduced_shape(x.shape, self.axis, False)))
        return out


class Cumsum(SameShape, Operation):
    op_type = "cumsum"

    def forward(self, xp, x):
        return _cumsum(xp, xp.asarray(x), self.axis, self.exclusive, self.reverse)


def _cumsum(xp, x, axis, exclusive, reverse):
    if reverse:
        x = xp.flip(x, axis=axis)
    dtype = x.dtype if _integer_kind(x) else None
    out = xp.cumsum(x, axis=axis, dtype=dtype)
    if exclusive:
        # Shift by one along axis: [0, x0, x0 + x1, ...] (slices, which CuPy takes too).
        moved = xp.moveaxis(out, axis, 0)
        moved = xp.concatenate([xp.zeros_like(moved[:1]), moved[:-1]])
        out = xp.moveaxis(moved, 0, axis)
    return xp.flip(out, axis=axis) if reverse else out


def _reduction_args(fn_name, axis, keepdims, reduction_indices, keep_dims):
    # TF-1's deprecated aliases: reduction_indices for axis, keep_dims for keepdims.
    if reduction_indices is not None:
        if axis is not None:
            raise ValueError(f"{fn_name}: cannot specify both 'axis' and 'reduction_indices'")
        axis = reduction_indices
    if keep_dims is not None:
        if keepdims is not None:
            raise ValueError(f"{fn_name}: cannot specify both 'keepdims' and 'keep_dims'")
        keepdims = keep_dims
    return _axis_attr(axis), bool(keepdims)


def _reducer(op_class, fn_name, doc):
    def reduce(
        input_tensor, axis=None, keepdims=None, name=None, reduction_indices=None, keep_dims=None
    ):
        axis, keepdims = _reduction_args(fn_name, axis, keepdims, reduction_indices, keep_dims)
        return op_class([input_tensor], name=name, axis=axis, keepdims=keepdims)

    reduce.__name__ = reduce.__qualname__ = fn_name
    reduce.__doc__ = doc
    return reduce


reduce_sum = _reducer(ReduceSum, "reduce_sum", "Sum over `axis` (None: all axes).")
reduce_mean = _reducer(ReduceMean, "reduce_mean", "Mean over `axis` (None: all axes).")
reduce_max = _reducer(
    ReduceMax, "reduce_max", "Maximum over `axis`; the gradient is shared among tied maxima."
)
reduce_min = _reducer(
    ReduceMin, "reduce_min", "Minimum over `axis`; the gradient is shared among tied minima."
)
reduce_prod = _reducer(ReduceProd, "reduce_prod", "Product over `axis` (None: all axes).")
reduce_any = _reducer(ReduceAny, "reduce_any", "Logical OR over `axis` (not differentiable).")
reduce_all = _reducer(ReduceAll, "reduce_all", "Logical AND over `axis` (not differentiable).")
reduce_logsumexp = _reducer(
    ReduceLogSumExp, "reduce_logsumexp", "log(sum(exp(x))) over `axis`, computed stably."
)


def cumsum(x, axis=0, exclusive=False, reverse=False, name=None):
    """Cumulative sum along `axis`; `exclusive` leaves each element out of its own sum and
    `reverse` sums from the end."""
    return Cumsum([x], name=name, axis=int(axis), exclusive=bool(exclusive), reverse=bool(reverse))


NotDifferentiable("reduce_any")
NotDifferentiable("reduce_all")


def _spread(op, g):
    """g reshaped to the keepdims shape of the reduction, ready to broadcast over x."""
    return g.reshape(_kept_shape(op.inputs[0].shape, op.op.axis))


@RegisterGradient("reduce_sum")
def _reduce_sum_grad(op, g):
    x = op.inputs[0]
    return (op.xp.broadcast_to(_spread(op, g), x.shape),)


@RegisterGradient("reduce_mean")
def _reduce_mean_grad(op, g):
    x = op.inputs[0]
    kept = _kept_shape(x.shape, op.op.axis)
    count = x.size // max(1, _prod(kept))
    return (op.xp.broadcast_to(g.reshape(kept) / count, x.shape),)


def _extremum_grad(op, g):
    x = op.inputs[0]
    kept = _kept_shape(x.shape, op.op.axis)
    hit = x == op.output.reshape(kept)
    ties = hit.sum(axis=_axis_arg(op.op.axis), keepdims=True)
    return (hit * (g.reshape(kept) / ties),)


@RegisterGradient("reduce_max")
def _reduce_max_grad(op, g):
    return _extremum_grad(op, g)


@RegisterGradient("reduce_min")
def _reduce_min_grad(op, g):
    return _extremum_grad(op, g)


@RegisterGradient("reduce_prod")
def _reduce_prod_grad(op, g):
    # d prod / d x_i = product of the others: exclusive cumulative products from both ends,
    # which stays right when some x are zero (no division by x).
    xp = op.xp
    x = op.inputs[0]
    axis = op.op.axis
    rank = x.ndim
    axes = list(range(rank)) if axis is None else [a % rank for a in _as_list(axis)]
    rest = [a for a in range(rank) if a not in axes]
    moved = xp.transpose(x, rest + axes)
    flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
    ones = xp.ones(flat.shape[:-1] + (1,), dtype=flat.dtype)
    left = xp.cumprod(xp.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = xp.flip(
        xp.cumprod(xp.concatenate([ones, xp.flip(flat, axis=-1)[..., :-1]], axis=-1), axis=-1),
        axis=-1,
    )
    others = (left * right).reshape(moved.shape)
    inverse = [0] * rank
    for i, p in enumerate(rest + axes):
        inverse[p] = i
    return (xp.transpose(others, inverse) * _spread(op, g),)


def _as_list(axis):
    return axis if isinstance(axis, list) else [axis]


@RegisterGradient("reduce_logsumexp")
def _reduce_logsumexp_grad(op, g):
    xp = op.xp
    x = op.inputs[0]
    kept = _kept_shape(x.shape, op.op.axis)
    return (_spread(op, g) * xp.exp(x - op.output.reshape(kept)),)


@RegisterGradient("cumsum")
def _cumsum_grad(op, g):
    attrs = op.op.attrs
    return (_cumsum(op.xp, g, attrs["axis"], attrs["exclusive"], not attrs["reverse"]),)
