"""pad (CONSTANT, REFLECT, SYMMETRIC) and reverse, with their gradients."""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Operation
from engine.shape_helpers import constant_value, int_list, normalize_axis, static_shape_of

__all__ = ["pad", "reverse"]

_PAD_MODES = {"CONSTANT": "constant", "REFLECT": "reflect", "SYMMETRIC": "symmetric"}


class Pad(Operation):
    """`tensor` padded by `paddings` ([[before, after] per dimension]) in TF-1's modes."""

    op_type = "pad"

    def forward(self, xp, x):
        paddings = [tuple(p) for p in self.attrs["paddings"]]
        mode = self.attrs["mode"]
        if mode == "CONSTANT":
            return xp.pad(
                x, paddings, mode="constant", constant_values=self.attrs["constant_values"]
            )
        # numpy repeats a reflection when a pad exceeds the input; TF-1 refuses it.
        limit = 1 if mode == "REFLECT" else 0
        for axis, (before, after) in enumerate(paddings):
            if max(before, after) > x.shape[axis] - limit:
                raise ValueError(
                    f"pad: paddings {before, after} must be at most {x.shape[axis] - limit} for "
                    f"dimension {axis} (size {x.shape[axis]}) in {mode} mode"
                )
        return xp.pad(x, paddings, mode=_PAD_MODES[mode])

    def infer_shape(self, shape):
        paddings = self.attrs["paddings"]
        if shape.rank is None:
            return [None] * len(paddings)
        return [None if d is None else d + b + a for d, (b, a) in zip(shape, paddings, strict=True)]


def _along(axis: int, ndim: int, index) -> tuple:
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


@RegisterGradient("pad")
def _pad_grad(op, g):
    # The adjoint of each mode, one dimension at a time: the core's slice of g, plus (REFLECT
    # and SYMMETRIC) the padded edges folded back, mirrored, onto the entries they copied.
    x = op.inputs[0]
    mode = op.op.attrs["mode"]
    for axis, (before, after) in enumerate(op.op.attrs["paddings"]):
        n = x.shape[axis]
        core = g[_along(axis, g.ndim, slice(before, before + n))]
        if mode != "CONSTANT" and (before or after):
            core = core.copy()
            shift = 1 if mode == "REFLECT" else 0
            if before:
                left = g[_along(axis, g.ndim, slice(before - 1, None, -1))]
                core[_along(axis, g.ndim, slice(shift, shift + before))] += left
            if after:
                right = g[_along(axis, g.ndim, slice(None, before + n - 1, -1))]
                core[_along(axis, g.ndim, slice(n - shift - after, n - shift))] += right
        g = core
    return (g,)


def pad(tensor, paddings, mode="CONSTANT", name=None, constant_values=0):
    """`tensor` padded by `paddings[i] = [before, after]` along each dimension i; mode
    CONSTANT fills `constant_values`, REFLECT mirrors without the edge, SYMMETRIC with it."""
    mode = str(mode).upper()
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    flat = int_list(paddings, "pad: paddings")
    if len(flat) % 2 or any(p < 0 for p in flat):
        raise ValueError("pad: paddings must be [[before, after], ...] of non-negative ints")
    pairs = [flat[i : i + 2] for i in range(0, len(flat), 2)]
    shape = static_shape_of(tensor)
    if shape.rank is not None and shape.rank != len(pairs):
        raise ValueError(
            f"pad: paddings has {len(pairs)} rows for a tensor of rank {shape.rank} ({shape})"
        )
    value = constant_value(constant_values, "pad: constant_values").item()
    return Pad([tensor], name=name, paddings=pairs, mode=mode, constant_values=value)


class Reverse(Operation):
    op_type = "reverse"

    def forward(self, xp, x):
        return xp.flip(x, axis=tuple(self.attrs["axis"]))

    def infer_shape(self, shape):
        return shape


@RegisterGradient("reverse")
def _reverse_grad(op, g):
    return (op.xp.flip(g, axis=tuple(op.op.attrs["axis"])),)


def reverse(tensor, axis, name=None):
    """`tensor` with the order of its entries reversed along each dimension in `axis`."""
    axes = int_list(axis, "reverse: axis")
    rank_ = static_shape_of(tensor).rank
    axes = [normalize_axis(a, rank_, "reverse") for a in axes]
    if len(set(axes)) != len(axes):
        raise ValueError(f"reverse: axis {axes} lists a dimension twice")
    return Reverse([tensor], name=name, axis=axes)
