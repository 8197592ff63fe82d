"""get_variable / variable_scope / name_scope against real TensorFlow (compat.v1): the names
given, reuse rules and their errors, inherited initializers and regularizers."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import engine as tf


def _in_graph(t, program):
    with t.Graph().as_default():
        return program(t)


def _same_in_both(tfv1, program):
    ours = _in_graph(tf, program)
    theirs = _in_graph(tfv1, program)
    assert ours == theirs
    return ours


def test_variable_and_op_names_follow_tf1(tfv1):
    def program(t):
        names = []
        with t.variable_scope("outer"):
            w = t.get_variable("w", [2, 3])
            names += [w.op.name, t.add(w, 1.0, name="plus").op.name]
            with t.name_scope("block"):
                v = t.get_variable("v", [1])  # name scopes do not reach variable names
                names += [v.op.name, t.multiply(v, 2.0, name="times").op.name]
            with t.variable_scope("inner"):
                names.append(t.get_variable("b", [3]).op.name)
                names.append(t.identity(w, name="id").op.name)
                names.append(t.get_variable_scope().name)
        with t.variable_scope("outer", reuse=True):
            names.append(t.identity(w, name="again").op.name)  # the name scope is outer_1
        return names

    assert _same_in_both(tfv1, program)[:2] == ["outer/w", "outer/plus"]


def test_default_names_and_reentered_scope_objects_follow_tf1(tfv1):
    def program(t):
        names = []
        for _ in range(2):
            with t.variable_scope(None, default_name="dense"):
                names.append(t.get_variable("kernel", [2]).op.name)
        with t.variable_scope("tower") as scope:
            names.append(t.identity(t.constant(1.0), name="a").op.name)
        with t.variable_scope(scope):
            names.append(t.identity(t.constant(1.0), name="b").op.name)
            names.append(t.get_variable("w", [1]).op.name)
        with t.variable_scope(scope, auxiliary_name_scope=False):
            names.append(t.get_variable("u", [1]).op.name)
        with t.name_scope(None, default_name="loss") as scope_name:
            names.append(scope_name)
        with t.name_scope("loss") as scope_name:
            names.append(scope_name)
        return names

    names = _same_in_both(tfv1, program)
    assert names[:2] == ["dense/kernel", "dense_1/kernel"]


def test_reuse_modes_follow_tf1(tfv1):
    def program(t):
        with t.variable_scope("m"):
            w = t.get_variable("w", [2, 2])
        with t.variable_scope("m", reuse=True):
            same_reuse = t.get_variable("w") is w
            with t.variable_scope("child"):
                inherited = t.get_variable_scope().reuse is True
        with t.variable_scope("m", reuse=t.AUTO_REUSE):
            same_auto = t.get_variable("w", [2, 2]) is w
            created = t.get_variable("fresh", [1]).op.name
        with t.variable_scope("m") as scope:
            scope.reuse_variables()
            same_after_reuse_variables = t.get_variable("w") is w
        return [same_reuse, inherited, same_auto, created, same_after_reuse_variables]

    assert _same_in_both(tfv1, program) == [True, True, True, "m/fresh", True]


def _error(t, program):
    with t.Graph().as_default(), pytest.raises(ValueError) as info:
        program(t)
    return str(info.value)


@pytest.mark.parametrize(
    "case",
    ["exists", "missing", "shape"],
)
def test_reuse_errors_read_like_tf1(tfv1, case):
    def program(t):
        with t.variable_scope("foo"):
            t.get_variable("w", [2, 3])
        if case == "exists":
            with t.variable_scope("foo"):
                t.get_variable("w", [2, 3])
        elif case == "missing":
            with t.variable_scope("foo", reuse=True):
                t.get_variable("nothere", [1])
        else:
            with t.variable_scope("foo", reuse=True):
                t.get_variable("w", [3, 3])

    ours, theirs = _error(tf, program), _error(tfv1, program)
    first_sentence = theirs.split(".")[0]
    assert ours.startswith(first_sentence), (ours, theirs)


def test_new_variable_needs_a_shape():
    with pytest.raises(ValueError, match="must be fully defined"):
        tf.get_variable("w")


def _values(t, program):
    with t.Graph().as_default():
        fetches = program(t)
        with t.Session() as session:
            session.run(t.global_variables_initializer())
            return session.run(fetches)


def test_initializers_regularizers_and_dtypes_follow_tf1(tfv1):
    def program(t):
        def reg(v):
            return t.reduce_sum(t.square(v)) * 0.1

        with t.variable_scope("s", initializer=t.constant_initializer(0.5), regularizer=reg):
            a = t.get_variable("a", [2, 2])
            with t.variable_scope("deeper", dtype=t.float64):
                b = t.get_variable("b", [3], initializer=t.ones_initializer())
        c = t.get_variable("c", [2], dtype=t.int32)  # integers default to zeros
        d = t.get_variable("d", initializer=t.constant(np.arange(3.0, dtype=np.float32)))
        e = t.get_variable("e", [2], initializer=t.zeros_initializer)  # the class itself
        losses = t.get_collection(t.GraphKeys.REGULARIZATION_LOSSES)
        assert len(losses) == 2
        return [a, b, c, d, e, *losses]

    ours, theirs = _values(tf, program), _values(tfv1, program)
    for got, expected in zip(ours, theirs, strict=True):
        got, expected = np.asarray(got), np.asarray(expected)
        assert got.dtype == expected.dtype
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_default_initializer_is_glorot_uniform():
    w = tf.get_variable("w", [300, 100])
    limit = np.sqrt(6.0 / 400)
    assert w.dtype == np.float32
    assert np.abs(w.initial_value).max() <= limit
    assert abs(w.initial_value.std() - limit / np.sqrt(3.0)) < 0.05 * limit


def test_trainable_and_collections():
    frozen = tf.get_variable("frozen", [2], trainable=False, collections=["mine"])
    live = tf.get_variable("live", [2])
    assert not frozen.trainable and live.trainable
    assert frozen in tf.get_collection("mine")
    assert live in tf.trainable_variables() and frozen not in tf.trainable_variables()


@pytest.mark.parametrize("name", ["get_variable", "variable_scope", "name_scope"])
def test_signature_matches_tf1(tfv1, name):
    def params(fn):
        target = fn.__init__ if inspect.isclass(fn) else fn
        return [p for p in inspect.signature(target).parameters if p != "self"]

    ours, theirs = params(getattr(tf, name)), params(getattr(tfv1, name))
    assert ours[: len(theirs)] == theirs
