"""Run one TF-1 program on the engine and on real TensorFlow (compat.v1) and compare.

A program is a function of the module (`engine` or `tensorflow.compat.v1`) returning the
fetches; inputs are numpy constants inside it, so the same code builds both graphs.
"""

from __future__ import annotations

import numpy as np

import engine

__all__ = ["assert_matches_tf", "run_both", "run_engine", "run_tf"]


def run_both(tfv1, program, *arrays):
    """program(module, *placeholders) -> fetches, run on the engine and on TF: (engine, tf)."""
    results = []
    for module, graph in ((engine, engine.Graph()), (tfv1, tfv1.Graph())):
        with graph.as_default():
            nodes = [module.placeholder(a.dtype, a.shape) for a in arrays]
            fetches = program(module, *nodes)
            with module.Session(graph=graph) as session:
                results.append(session.run(fetches, dict(zip(nodes, arrays, strict=True))))
    return results


def run_engine(program, device="cpu"):
    """The fetches of `program(engine)` in a fresh graph and session."""
    with engine.Graph().as_default() as graph:
        fetches = program(engine)
        with engine.Session(graph, device=device) as session:
            session.run(engine.global_variables_initializer())
            return session.run(fetches)


def run_tf(tf_module, program):
    """The fetches of `program(tf.compat.v1)` in a fresh graph and session."""
    with tf_module.Graph().as_default():
        fetches = program(tf_module)
        with tf_module.Session() as session:
            session.run(tf_module.global_variables_initializer())
            return session.run(fetches)


def assert_matches_tf(tf_module, program, rtol=1e-6, atol=1e-6, check_dtype=True, device="cpu"):
    """Each fetch of the engine equals TensorFlow's (values, shapes and dtypes)."""
    got = run_engine(program, device)
    expected = run_tf(tf_module, program)
    if not isinstance(got, (list, tuple)):
        got, expected = [got], [expected]
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        g, e = np.asarray(g), np.asarray(e)
        assert g.shape == e.shape, f"fetch {i}: shape {g.shape} != TF's {e.shape}"
        if check_dtype:
            assert g.dtype == e.dtype, f"fetch {i}: dtype {g.dtype} != TF's {e.dtype}"
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"fetch {i}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"fetch {i}")
