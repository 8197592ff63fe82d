"""tf.nn normalisation, composed from primitives as TF-1 composes it: l2_normalize, moments,
batch_normalization."""

from __future__ import annotations

import numpy as np

from engine import ops_array, ops_math
from engine.ops_nn_common import maximum_with, rsqrt, static_dtype

__all__ = ["batch_normalization", "l2_normalize", "moments"]


def _pick(new, old, new_name: str, old_name: str):
    # TF-1 renamed several arguments (dim -> axis, keep_dims -> keepdims); both is an error.
    if new is not None and old is not None and new != old:
        raise ValueError(f"cannot specify both '{new_name}' and '{old_name}'")
    return new if new is not None else old


def _axes(axis):
    if axis is None or isinstance(axis, (int, np.integer)):
        return None if axis is None else int(axis)
    return [int(a) for a in axis]


def l2_normalize(x, axis=None, epsilon=1e-12, name=None, dim=None):
    """x / sqrt(max(sum(x ** 2, axis), epsilon)) (axis None: over every axis)."""
    axis = _axes(_pick(axis, dim, "axis", "dim"))
    square_sum = ops_array.reduce_sum(ops_math.square(x), axis=axis, keepdims=True)
    inverse_norm = rsqrt(maximum_with(square_sum, float(epsilon)))
    return ops_math.multiply(x, inverse_norm, name=name)


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """(mean, variance) of x over `axes`; the variance's gradient does not flow through the
    mean (TF-1: squared_difference(x, stop_gradient(mean))).  `shift` is unused, as in TF-1."""
    keep = bool(_pick(keepdims, keep_dims, "keepdims", "keep_dims"))
    axes = _axes(axes)
    low_precision = static_dtype(x) == np.float16
    y = ops_array.cast(x, np.float32) if low_precision else x
    mean_kept = ops_array.reduce_mean(y, axis=axes, keepdims=True)
    centred = ops_math.subtract(y, ops_array.stop_gradient(mean_kept))
    variance = ops_array.reduce_mean(ops_math.square(centred), axis=axes, keepdims=keep)
    mean = mean_kept if keep else ops_array.reduce_mean(y, axis=axes, keepdims=False)
    if low_precision:
        mean, variance = ops_array.cast(mean, np.float16), ops_array.cast(variance, np.float16)
    if name is not None:
        mean = ops_array.identity(mean, name=f"{name}/mean")
        variance = ops_array.identity(variance, name=f"{name}/variance")
    return mean, variance


def batch_normalization(x, mean, variance, offset, scale, variance_epsilon, name=None):
    """(x - mean) * scale / sqrt(variance + eps) + offset, spelled as TF-1 computes it:
    x * inv + (offset - mean * inv) with inv = scale * rsqrt(variance + eps)."""
    inverse = rsqrt(ops_math.add(variance, float(variance_epsilon)))
    if scale is not None:
        inverse = ops_math.multiply(inverse, scale)
    shifted = ops_math.multiply(mean, inverse)
    bias = ops_math.negative(shifted) if offset is None else ops_math.subtract(offset, shifted)
    return ops_math.add(ops_math.multiply(x, inverse), bias, name=name)
