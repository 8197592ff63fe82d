"""Initializers at TF-1's top level: zeros_initializer, glorot_uniform_initializer, ...

Each is a class whose instances are called as `init(shape, dtype=None, partition_info=None)`
and return a numpy array (what `get_variable` and `tf.Variable` take).  Random initializers
are seeded as TF-1's ops: with a seed, every call gives the same values; without one, a
graph seed (`tf.set_random_seed`) makes a program reproducible (each call then takes the
next value of a per-graph counter as its op seed); with neither, draws are fresh.
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from engine.graph import get_default_graph
from engine.random_ops import op_seed_pair

__all__ = [
    "constant_initializer",
    "glorot_normal_initializer",
    "glorot_uniform_initializer",
    "ones_initializer",
    "random_normal_initializer",
    "random_uniform_initializer",
    "truncated_normal_initializer",
    "variance_scaling_initializer",
    "zeros_initializer",
]

_calls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # graph -> initializer calls


def _generator(seed) -> np.random.Generator:
    graph = get_default_graph()
    count = _calls.get(graph, 0)
    _calls[graph] = count + 1
    pair = op_seed_pair(graph.seed, seed, count)
    return np.random.default_rng(None if pair is None else list(pair))


def _dtype(dtype, default):
    return np.dtype(default if dtype is None else dtype)


def _truncated_standard_normal(rng, shape):
    z = rng.standard_normal(shape)
    outside = np.abs(z) > 2
    while outside.any():  # redraw beyond two standard deviations, as TF
        z[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(z) > 2
    return z


class Initializer:
    """Base: `init(shape, dtype=None, partition_info=None)` -> numpy array."""

    dtype = np.dtype(np.float32)

    def __call__(self, shape, dtype=None, partition_info=None):
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments (TF-1's get_config)."""
        return {}


class Zeros(Initializer):
    """All zeros."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        return np.zeros(_shape(shape), dtype=_dtype(dtype, self.dtype))

    def get_config(self):
        return {"dtype": self.dtype.name}


class Ones(Zeros):
    """All ones."""

    def __call__(self, shape, dtype=None, partition_info=None):
        return np.ones(_shape(shape), dtype=_dtype(dtype, self.dtype))


class Constant(Initializer):
    """`value` (a scalar, or a list/array: as TF-1, a shorter list is completed with its last
    element; a longer one is an error)."""

    def __init__(self, value=0, dtype=np.float32, verify_shape=False):
        self.value = value
        self.dtype = np.dtype(dtype)
        self.verify_shape = verify_shape

    def __call__(self, shape, dtype=None, partition_info=None, verify_shape=None):
        shape = _shape(shape)
        dtype = _dtype(dtype, self.dtype)
        array = np.asarray(self.value, dtype=dtype)
        if array.size == 1 and not (verify_shape or self.verify_shape):
            return np.full(shape, array.reshape(()), dtype=dtype)
        size = math.prod(shape)
        flat = array.reshape(-1)
        if array.shape == shape:
            return array.copy()
        if verify_shape or self.verify_shape or flat.size > size:
            raise ValueError(
                f"constant_initializer: value of shape {array.shape} does not fit shape {shape}"
            )
        padded = np.concatenate([flat, np.full(size - flat.size, flat[-1], dtype=dtype)])
        return padded.reshape(shape)

    def get_config(self):
        return {"value": self.value, "dtype": self.dtype.name, "verify_shape": self.verify_shape}


class RandomNormal(Initializer):
    """Normal draws of `mean` and `stddev`."""

    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=np.float32):
        self.mean, self.stddev, self.seed = mean, stddev, seed
        self.dtype = np.dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        z = _generator(self.seed).standard_normal(_shape(shape))
        return (z * self.stddev + self.mean).astype(_dtype(dtype, self.dtype))

    def get_config(self):
        return {
            "mean": self.mean,
            "stddev": self.stddev,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }


class TruncatedNormal(RandomNormal):
    """Normal draws of `mean` and `stddev`, those beyond two stddev drawn again."""

    def __call__(self, shape, dtype=None, partition_info=None):
        z = _truncated_standard_normal(_generator(self.seed), _shape(shape))
        return (z * self.stddev + self.mean).astype(_dtype(dtype, self.dtype))


class RandomUniform(Initializer):
    """Uniform draws in [minval, maxval) (maxval defaults to 1 for floats)."""

    def __init__(self, minval=0.0, maxval=None, seed=None, dtype=np.float32):
        self.minval, self.maxval, self.seed = minval, maxval, seed
        self.dtype = np.dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = _dtype(dtype, self.dtype)
        rng = _generator(self.seed)
        if dtype.kind in "iu":
            if self.maxval is None:
                raise ValueError("random_uniform_initializer: integer dtypes need maxval")
            return rng.integers(self.minval, self.maxval, _shape(shape), dtype=dtype)
        hi = 1.0 if self.maxval is None else self.maxval
        return rng.uniform(self.minval, hi, _shape(shape)).astype(dtype)

    def get_config(self):
        return {
            "minval": self.minval,
            "maxval": self.maxval,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }


def _fans(shape):
    """(fan_in, fan_out) as TF-1's `_compute_fans`."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(Initializer):
    """Draws scaled to the layer's fan: stddev sqrt(scale / n), n the fan_in, fan_out or their
    average (`mode`); `distribution` "truncated_normal" (also "normal", as TF-1),
    "untruncated_normal" or "uniform" (limit sqrt(3 scale / n))."""

    def __init__(
        self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, dtype=np.float32
    ):
        if scale <= 0.0:
            raise ValueError("variance_scaling_initializer: scale must be positive")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"variance_scaling_initializer: invalid mode {mode!r}")
        distribution = distribution.lower()
        if distribution not in ("normal", "uniform", "truncated_normal", "untruncated_normal"):
            raise ValueError(f"variance_scaling_initializer: invalid distribution {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed
        self.dtype = np.dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        shape = _shape(shape)
        dtype = _dtype(dtype, self.dtype)
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = _generator(self.seed)
        if self.distribution in ("normal", "truncated_normal"):
            # 0.879...: the stddev of a unit normal truncated at two stddev (TF-1's constant).
            stddev = math.sqrt(scale) / 0.87962566103423978
            return (_truncated_standard_normal(rng, shape) * stddev).astype(dtype)
        if self.distribution == "untruncated_normal":
            return (rng.standard_normal(shape) * math.sqrt(scale)).astype(dtype)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape).astype(dtype)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }


class GlorotUniform(VarianceScaling):
    """Uniform in +-sqrt(6 / (fan_in + fan_out)) (Xavier)."""

    def __init__(self, seed=None, dtype=np.float32):
        super().__init__(1.0, "fan_avg", "uniform", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


class GlorotNormal(VarianceScaling):
    """Truncated normal of stddev sqrt(2 / (fan_in + fan_out)) (Xavier)."""

    def __init__(self, seed=None, dtype=np.float32):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, dtype)

    def get_config(self):
        return {"seed": self.seed, "dtype": self.dtype.name}


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(d) for d in shape)


# TF-1's top-level names are the classes themselves.
zeros_initializer = Zeros
ones_initializer = Ones
constant_initializer = Constant
random_normal_initializer = RandomNormal
random_uniform_initializer = RandomUniform
truncated_normal_initializer = TruncatedNormal
variance_scaling_initializer = VarianceScaling
glorot_uniform_initializer = GlorotUniform
glorot_normal_initializer = GlorotNormal
