"""Forward parity with real TensorFlow: one build, written once, run on the engine and TF-1.

A build is `build(t, *inputs)` where `t` is `engine` or `tensorflow.compat.v1` and the inputs
are placeholders of the given arrays' dtypes; it returns a node or a list/tuple of nodes.
`assert_matches_tf` compares the values, the static shapes (fully known placeholders, and again
with the first dimension unknown) and the dtypes.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import engine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tensorflow = pytest.importorskip("tensorflow", reason="forward parity needs real TensorFlow")
tfv1 = tensorflow.compat.v1

__all__ = ["assert_matches_tf", "run_engine", "run_tf", "tfv1"]


def _flat(out) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _placeholder_shape(array, leading_unknown: bool):
    shape = list(np.shape(array))
    if leading_unknown and shape:
        shape[0] = None
    return shape


def run_tf(build, arrays, leading_unknown=False):
    """(values, static shapes, dtypes) of `build(tfv1, ...)` in a fresh TF graph."""
    with tensorflow.Graph().as_default():
        nodes = [
            tfv1.placeholder(tensorflow.as_dtype(a.dtype), _placeholder_shape(a, leading_unknown))
            for a in arrays
        ]
        outs = _flat(build(tfv1, *nodes))
        with tfv1.Session() as session:
            values = session.run(outs, dict(zip(nodes, arrays, strict=True)))
        shapes = [o.shape.as_list() if o.shape.rank is not None else None for o in outs]
        dtypes = [np.dtype(o.dtype.as_numpy_dtype) for o in outs]
    return values, shapes, dtypes


def run_engine(build, arrays, device="cpu", leading_unknown=False):
    """(values, static shapes, dtypes) of `build(engine, ...)` in a fresh engine graph."""
    with engine.Graph().as_default() as graph:
        nodes = [
            engine.placeholder(a.dtype, _placeholder_shape(a, leading_unknown)) for a in arrays
        ]
        outs = _flat(build(engine, *nodes))
        with engine.Session(graph, device=device) as session:
            values = session.run(outs, dict(zip(nodes, arrays, strict=True)))
        shapes = [o.shape.as_list() if o.shape.rank is not None else None for o in outs]
        dtypes = [o.dtype for o in outs]
    return values, shapes, dtypes


def assert_matches_tf(build, arrays, device="cpu", rtol=1e-6, atol=0.0, partial_shapes=True):
    """The engine's values, static shapes and dtypes equal TF-1's for `build` (the static
    shapes with the first dimension unknown too, unless `partial_shapes` is False)."""
    arrays = [np.asarray(a) for a in arrays]
    got, got_shapes, got_dtypes = run_engine(build, arrays, device)
    want, want_shapes, want_dtypes = run_tf(build, arrays)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"output {k}: shape {g.shape} != TF's {w.shape}"
        assert g.dtype == w.dtype, f"output {k}: dtype {g.dtype} != TF's {w.dtype}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {k}")
    assert got_dtypes == want_dtypes, "static dtypes differ from TF's"
    assert got_shapes == want_shapes, "static shapes (known placeholders) differ from TF's"
    if not partial_shapes:
        return
    try:
        _, want_partial, _ = run_tf(build, arrays, leading_unknown=True)
    except ValueError:  # TF-1 refuses the build without the first dimension: so must we
        with pytest.raises(ValueError):
            run_engine(build, arrays, device, leading_unknown=True)
        return
    _, got_partial, _ = run_engine(build, arrays, device, leading_unknown=True)
    assert got_partial == want_partial, "static shapes (first dimension unknown) differ from TF's"
