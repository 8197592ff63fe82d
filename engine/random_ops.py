"""Random ops (TF-1 names): random_normal, truncated_normal, random_uniform, set_random_seed.

Each random op draws new values every run from its OWN generator, made the first time a
Session compiles it and kept for that Session (every plan of one session continues one
stream).  Its seed comes from (graph seed, op seed), as TF-1's `get_seed`:

- graph seed and op seed: both;
- graph seed only: the op's creation index in the graph stands in for the op seed, so two
  random ops never repeat each other's draws and a seeded program is reproducible;
- op seed only: a fixed default graph seed with the op seed;
- neither: a seed drawn from the Session's random stream (itself seeded by `Session(seed=)`).

Values do not equal TensorFlow's (different generators); their distributions do.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable
from engine.backend import make_rng
from engine.graph import Node, Operation, get_default_graph
from engine.shape_rules import attr_dtype, shape_argument
from engine.shapes import TensorShape

__all__ = [
    "DEFAULT_GRAPH_SEED",
    "random_normal",
    "random_uniform",
    "set_random_seed",
    "truncated_normal",
]

DEFAULT_GRAPH_SEED = 87654321  # TF-1's, used when only the op has a seed
_STREAMS_KEPT = 16  # sessions whose generator one op remembers


def set_random_seed(seed):
    """Set the default graph's random seed (TF-1's tf.set_random_seed)."""
    get_default_graph().seed = None if seed is None else int(seed)


def op_seed_pair(graph_seed, op_seed, creation_index):
    """(graph seed, op seed) as TF-1's `get_seed`, or None when neither seed is set."""
    if graph_seed is None and op_seed is None:
        return None
    if op_seed is None:
        return int(graph_seed), int(creation_index)
    return (DEFAULT_GRAPH_SEED if graph_seed is None else int(graph_seed)), int(op_seed)


def _seed_int(pair) -> int:
    return int(np.random.SeedSequence(list(pair)).generate_state(1, np.uint64)[0] >> 1)


class _RandomOp:
    """Mixin for random ops: a per-session generator, and the static shape/dtype from attrs."""

    stateful = True  # never constant-folded or merged

    def kernel(self, xp, rng):
        streams = self.__dict__.setdefault("_streams", {})
        entry = streams.get(id(rng))
        if entry is None:
            pair = op_seed_pair(self.graph.seed, self.attrs["seed"], self.attrs["seed2"])
            seed = _seed_int(pair) if pair is not None else int(float(rng.random()) * 2**53)
            if len(streams) >= _STREAMS_KEPT:
                streams.pop(next(iter(streams)))
            entry = streams[id(rng)] = (rng, make_rng(xp, seed))  # rng kept: its id stays unique
        generator = entry[1]

        def draw(*inputs):
            shape = self.attrs["shape"]
            if inputs:
                shape = [int(d) for d in inputs[0].tolist()]
            dtype = attr_dtype(self)
            return self.sample(xp, generator, tuple(shape), dtype)

        return draw

    def infer_shape(self, *input_shapes):
        shape = self.attrs["shape"]
        return None if shape is None else TensorShape(shape)

    def infer_dtype(self, *input_dtypes):
        return attr_dtype(self)


def _standard_normal(xp, generator, shape, dtype):
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
    return generator.standard_normal(shape, dtype=draw_dtype)


class RandomNormal(_RandomOp, Operation):
    op_type = "random_normal"

    def sample(self, xp, generator, shape, dtype):
        z = _standard_normal(xp, generator, shape, dtype)
        return (z * self.attrs["stddev"] + self.attrs["mean"]).astype(dtype, copy=False)


class TruncatedNormal(_RandomOp, Operation):
    """Normal draws beyond two standard deviations are drawn again (as TF)."""

    op_type = "truncated_normal"

    def sample(self, xp, generator, shape, dtype):
        z = _standard_normal(xp, generator, shape, dtype)
        outside = xp.abs(z) > 2
        count = int(outside.sum())
        while count:
            z[outside] = _standard_normal(xp, generator, (count,), dtype)
            outside = xp.abs(z) > 2
            count = int(outside.sum())
        return (z * self.attrs["stddev"] + self.attrs["mean"]).astype(dtype, copy=False)


class RandomUniform(_RandomOp, Operation):
    """Uniform in [minval, maxval); integers for an integer dtype."""

    op_type = "random_uniform"

    def sample(self, xp, generator, shape, dtype):
        lo, hi = self.attrs["minval"], self.attrs["maxval"]
        if dtype.kind in "iu":
            return generator.integers(int(lo), int(hi), size=shape, dtype=dtype)
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
        u = generator.random(shape, dtype=draw_dtype)
        return (u * (hi - lo) + lo).astype(dtype, copy=False)


NotDifferentiable("random_normal")
NotDifferentiable("truncated_normal")
NotDifferentiable("random_uniform")


def _shape_args(shape):
    """(input nodes, static shape attr): a shape holding nodes is an input (its static part
    in the attr), a static one only the attr."""
    dims, node = shape_argument(shape)
    return ([] if node is None else [node]), dims


def _build(op_class, shape, dtype, seed, name, **params):
    inputs, static = _shape_args(shape)
    graph = inputs[0].graph if inputs else get_default_graph()
    return op_class(
        inputs,
        name=name,
        shape=static,
        dtype=np.dtype(dtype).name,
        seed=None if seed is None else int(seed),
        seed2=len(graph.operations),
        **params,
    )


def _scaled(op_class, shape, loc, scale, dtype, seed, name):
    # Tensor mean/stddev: a standard draw, then scale and shift as ops.
    if isinstance(loc, Node) or isinstance(scale, Node):
        from engine import ops_math

        z = _build(op_class, shape, dtype, seed, None, mean=0.0, stddev=1.0)
        return ops_math.add(ops_math.multiply(z, scale), loc, name=name)
    return _build(op_class, shape, dtype, seed, name, mean=float(loc), stddev=float(scale))


def random_normal(shape, mean=0.0, stddev=1.0, dtype=np.float32, seed=None, name=None):
    """Normal draws of `shape` (a list or an int vector node), new each run."""
    return _scaled(RandomNormal, shape, mean, stddev, dtype, seed, name)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=np.float32, seed=None, name=None):
    """Normal draws of `shape`, those beyond two stddev drawn again, new each run."""
    return _scaled(TruncatedNormal, shape, mean, stddev, dtype, seed, name)


def random_uniform(shape, minval=0, maxval=None, dtype=np.float32, seed=None, name=None):
    """Uniform draws in [minval, maxval) of `shape` (maxval defaults to 1 for floats; integer
    dtypes need it), new each run."""
    dtype = np.dtype(dtype)
    if maxval is None:
        if dtype.kind in "iu":
            raise ValueError(f"random_uniform: maxval must be given for dtype {dtype.name}")
        maxval = 1.0
    if isinstance(minval, Node) or isinstance(maxval, Node):
        from engine import ops_math

        u = _build(RandomUniform, shape, dtype, seed, None, minval=0.0, maxval=1.0)
        span = ops_math.subtract(maxval, minval)
        return ops_math.add(ops_math.multiply(u, span), minval, name=name)
    cast = int if dtype.kind in "iu" else float
    return _build(RandomUniform, shape, dtype, seed, name, minval=cast(minval), maxval=cast(maxval))
