"""tf.nn normalisation and moments, composed from primitives as TF-1 composes them:
l2_normalize, moments, batch_normalization, sufficient_statistics, normalize_moments,
weighted_moments, batch_norm_with_global_normalization; and the loss helpers
log_poisson_loss, compute_average_loss, scale_regularization_loss."""

from __future__ import annotations

import math

import numpy as np

from engine import creation, ops_array, ops_compare, ops_math, ops_select, ops_shape
from engine.graph import constant
from engine.ops_nn_common import static_dtype, static_shape
from engine.ops_nn_xent import div_no_nan

__all__ = [
    "batch_norm_with_global_normalization",
    "batch_normalization",
    "compute_average_loss",
    "l2_normalize",
    "log_poisson_loss",
    "moments",
    "normalize_moments",
    "scale_regularization_loss",
    "sufficient_statistics",
    "weighted_moments",
]


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
    inverse_norm = ops_math.rsqrt(ops_math.maximum(square_sum, float(epsilon)))
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
    inverse = ops_math.rsqrt(ops_math.add(variance, float(variance_epsilon)))
    if scale is not None:
        inverse = ops_math.multiply(inverse, scale)
    shifted = ops_math.multiply(mean, inverse)
    bias = ops_math.negative(shifted) if offset is None else ops_math.subtract(offset, shifted)
    return ops_math.add(ops_math.multiply(x, inverse), bias, name=name)


def sufficient_statistics(x, axes, shift=None, keep_dims=None, name=None, keepdims=None):
    """(count, sum of x - shift, sum of (x - shift) ** 2, shift) over `axes` (TF-1's
    sufficient statistics; count is the number of elements reduced, in x's dtype)."""
    keep = bool(_pick(keepdims, keep_dims, "keepdims", "keep_dims"))
    axes = _axes(axes)
    shape = static_shape(x)
    reduced = list(range(shape.rank or 0)) if axes is None else axes
    reduced = [reduced] if isinstance(reduced, int) else reduced
    dims = [shape[a] for a in reduced] if shape.rank is not None else [None]
    dtype = static_dtype(x) or np.float32
    if None not in dims:
        count = constant(np.asarray(np.prod(dims, dtype=np.int64), dtype=dtype))
    else:  # known only at run time: the number of elements summed into one output
        ones = creation.ones_like(x)
        count = ops_array.reduce_max(ops_array.reduce_sum(ones, axis=axes))
    centred = x if shift is None else ops_math.subtract(x, shift)
    mean_ss = ops_array.reduce_sum(centred, axis=axes, keepdims=keep)
    variance_ss = ops_array.reduce_sum(ops_math.square(centred), axis=axes, keepdims=keep)
    return count, mean_ss, variance_ss, shift


def normalize_moments(counts, mean_ss, variance_ss, shift, name=None):
    """(mean, variance) from sufficient statistics."""
    divisor = ops_math.divide(1.0, counts)
    shifted_mean = ops_math.multiply(mean_ss, divisor)
    mean = shifted_mean if shift is None else ops_math.add(shifted_mean, shift)
    variance = ops_math.subtract(
        ops_math.multiply(variance_ss, divisor), ops_math.square(shifted_mean)
    )
    return mean, variance


def weighted_moments(x, axes, frequency_weights, name=None, keep_dims=None, keepdims=None):
    """(mean, variance) of x over `axes` with each element counted `frequency_weights` times
    (0 where the weights sum to 0)."""
    keep = bool(_pick(keepdims, keep_dims, "keepdims", "keep_dims"))
    axes = _axes(axes)
    weighted_sum = ops_array.reduce_sum(ops_math.multiply(frequency_weights, x), axes, True)
    broadcast_weights = ops_math.add(frequency_weights, creation.zeros_like(x))
    weight_sum = ops_array.reduce_sum(broadcast_weights, axis=axes, keepdims=True)
    mean = div_no_nan(weighted_sum, weight_sum)
    squared = ops_math.square(ops_math.subtract(x, mean))
    spread = ops_array.reduce_sum(ops_math.multiply(frequency_weights, squared), axes, True)
    variance = div_no_nan(spread, weight_sum)
    if not keep:
        mean, variance = ops_shape.squeeze(mean, axes), ops_shape.squeeze(variance, axes)
    return mean, variance


def log_poisson_loss(targets, log_input, compute_full_loss=False, name=None):
    """exp(log_input) - log_input * targets, plus Stirling's approximation of log(targets!)
    where targets > 1 when `compute_full_loss`."""
    loss = ops_math.subtract(ops_math.exp(log_input), ops_math.multiply(log_input, targets))
    if not compute_full_loss:
        return loss if name is None else ops_array.identity(loss, name=name)
    safe = ops_math.maximum(targets, 1.0)  # log(t) only where it is used (t > 1)
    stirling = ops_math.add(
        ops_math.subtract(ops_math.multiply(safe, ops_math.log(safe)), safe),
        ops_math.multiply(0.5, ops_math.log(ops_math.multiply(2 * math.pi, safe))),
    )
    small = ops_compare.logical_and(
        ops_compare.greater_equal(targets, 0.0), ops_compare.less_equal(targets, 1.0)
    )
    extra = ops_select.where(small, creation.zeros_like(stirling), stirling)
    return ops_math.add(loss, extra, name=name)


def batch_norm_with_global_normalization(
    t=None,
    m=None,
    v=None,
    beta=None,
    gamma=None,
    variance_epsilon=None,
    scale_after_normalization=None,
    name=None,
    input=None,  # noqa: A002 - TF-1's newer names for t, m, v
    mean=None,
    variance=None,
):
    """TF-1's older batch normalisation: batch_normalization(t, m, v, beta, gamma if
    scale_after_normalization else None, variance_epsilon)."""
    t = _pick(input, t, "input", "t")
    m = _pick(mean, m, "mean", "m")
    v = _pick(variance, v, "variance", "v")
    scale = gamma if scale_after_normalization else None
    return batch_normalization(t, m, v, beta, scale, variance_epsilon, name=name)


def compute_average_loss(per_example_loss, sample_weight=None, global_batch_size=None):
    """sum(per_example_loss * sample_weight) / global_batch_size (default: the batch size;
    one replica here)."""
    loss = per_example_loss
    if sample_weight is not None:
        loss = ops_math.multiply(loss, sample_weight)
    total = ops_array.reduce_sum(loss)
    dtype = static_dtype(per_example_loss) or np.float32
    if global_batch_size is None:
        batch = static_shape(per_example_loss)[0] if static_shape(per_example_loss).rank else None
        if batch is None:
            batch = ops_array.cast(ops_array.gather(ops_shape.shape(per_example_loss), 0), dtype)
        else:
            batch = constant(np.asarray(batch, dtype=dtype))
    else:
        batch = ops_array.cast(global_batch_size, dtype)
    return div_no_nan(total, batch)


def scale_regularization_loss(regularization_loss):
    """sum(regularization_loss) divided by the number of replicas (one here)."""
    return ops_array.reduce_sum(regularization_loss)
