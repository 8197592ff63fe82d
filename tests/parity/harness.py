"""Running one TF-1 program on a `tf` module (the engine or tensorflow.compat.v1) and comparing.

A program is a function `build(tf) -> Model` written once in TF-1 spelling; it must take its
initial weights from numpy (`tf.Variable(array)`), never from random ops, whose draws cannot
match across implementations.  `train(tf, build)` builds it in a fresh `tf.Graph()`, runs the
initialiser and `steps` training steps in a `tf.Session`, and records a `Trace`: the loss of
every step and the watched gradients of every GRADIENT_EVERY-th step (pre-update values), and
the weights after the last step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "ATOL",
    "GRADIENT_EVERY",
    "RTOL",
    "STEPS",
    "Model",
    "Trace",
    "assert_same",
    "assert_traces_match",
    "dense",
    "run_steps",
    "train",
]

STEPS = 25
RTOL = 1e-4
# Values that end up near zero (a weight crossing zero, an Adam step on a tiny gradient) have
# float32 rounding noise far above 1e-4 of themselves; 1e-6 absolute is below any real bug.
ATOL = 1e-6


@dataclass
class Model:
    """What a program returns: the loss, its train op, the weights to compare, and the feeds.

    `feed(step)` gives step `step`'s feed_dict; `grads` maps a name to a gradient tensor
    (`tf.gradients(...)[0]` or a `compute_gradients` entry), fetched every GRADIENT_EVERY
    steps.
    """

    loss: object
    train_op: object
    weights: dict[str, object]
    feed: Callable[[int], dict] = lambda step: {}
    grads: dict[str, object] = field(default_factory=dict)


@dataclass
class Trace:
    """A training run's record: per-step losses, gradients at some steps, final weights."""

    losses: list[float]
    grads: list[dict[str, np.ndarray]]
    weights: dict[str, np.ndarray]


def dense(value) -> np.ndarray:
    """A fetched value as a dense numpy array (IndexedSlices rows scattered, duplicates summed)."""
    if hasattr(value, "indices") and hasattr(value, "values"):
        rows = np.asarray(value.values)
        out = np.zeros(tuple(int(d) for d in value.dense_shape), dtype=rows.dtype)
        np.add.at(out, np.asarray(value.indices), rows)
        return out
    return np.asarray(value)


# Gradients are fetched next to the train op every GRADIENT_EVERY steps (and at the last);
# the other steps run `[loss, train_op]` alone, as users' training loops do.
GRADIENT_EVERY = 6


def run_steps(session, model: Model, steps: range, trace: Trace) -> None:
    """Run `steps` training steps, appending each step's loss (and, every GRADIENT_EVERY
    steps and at step STEPS - 1, the watched gradients keyed by step) to `trace`."""
    for step in steps:
        if model.grads and (step % GRADIENT_EVERY == 0 or step == STEPS - 1):
            loss, grads, _ = session.run(
                [model.loss, model.grads, model.train_op], model.feed(step)
            )
            trace.grads.append({"step": step, **{k: dense(g) for k, g in grads.items()}})
        else:
            loss, _ = session.run([model.loss, model.train_op], model.feed(step))
        trace.losses.append(float(loss))


def train(tf, build: Callable, steps: int = STEPS) -> Trace:
    """Build `build(tf)` in a fresh graph, initialise, train `steps` steps; the run's Trace."""
    graph = tf.Graph()
    with graph.as_default():
        model = build(tf)
        init = tf.global_variables_initializer()
    with tf.Session(graph=graph) as session:
        session.run(init)
        trace = Trace([], [], {})
        run_steps(session, model, range(steps), trace)
        trace.weights = {name: np.asarray(w) for name, w in session.run(model.weights).items()}
    return trace


def assert_same(actual, expected, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """assert_allclose with the suite's tolerances and a message naming `what`."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != TF's {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def assert_traces_match(engine: Trace, reference: Trace, rtol=RTOL, atol=ATOL) -> None:
    """Losses, every step's gradients and the final weights agree within the tolerances."""
    assert len(engine.losses) == len(reference.losses)
    assert_same(engine.losses, reference.losses, "losses per step", rtol, atol)
    assert len(engine.grads) == len(reference.grads)
    for mine, theirs in zip(engine.grads, reference.grads, strict=True):
        assert mine.keys() == theirs.keys()
        step = theirs["step"]
        for name in theirs:
            assert_same(mine[name], theirs[name], f"gradient of {name} at step {step}", rtol, atol)
    assert engine.weights.keys() == reference.weights.keys()
    for name in reference.weights:
        assert_same(engine.weights[name], reference.weights[name], f"weights {name}", rtol, atol)
