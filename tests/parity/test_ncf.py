"""NCF/NeuMF on embedding tables with every TF-1 optimizer, and gradient clipping, against TF."""

from __future__ import annotations

import functools

import pytest

from tests.parity.harness import assert_traces_match, train
from tests.parity.programs import OPTIMIZERS, build_ncf


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_ncf_trains_like_tensorflow(eng, tfv1, optimizer):
    """25 steps: losses, table and dense gradients, and every weight (all table rows) == TF's."""
    build = functools.partial(build_ncf, make_optimizer=OPTIMIZERS[optimizer])
    assert_traces_match(train(eng, build), train(tfv1, build))


def _clip_global_norm(tf, grads_and_vars):
    grads, variables = zip(*grads_and_vars, strict=True)
    clipped, _ = tf.clip_by_global_norm(list(grads), 0.05)
    return list(zip(clipped, variables, strict=True))


def _clip_embedding_by_value(tf, grads_and_vars):
    # The first variable is the GMF user table: its gradient is row-sparse (IndexedSlices).
    (g, var), *rest = grads_and_vars
    return [(tf.clip_by_value(g, -0.002, 0.002), var), *rest]


def _halve_gradients(tf, grads_and_vars):
    # TF has no `IndexedSlices * 0.5` (TypeError); tf.multiply densifies the table's gradient,
    # so every row then moves under Momentum. Dense gradients use the operator.
    # The first four variables are the embedding tables (programs.NCF_INIT's order).
    return [
        (tf.multiply(g, 0.5) if i < 4 else g * 0.5, var)
        for i, (g, var) in enumerate(grads_and_vars)
    ]


def _clip_each_by_norm(tf, grads_and_vars):
    return [(tf.clip_by_norm(g, 0.01), var) for g, var in grads_and_vars]


CLIPPING = {
    "clip_by_global_norm": _clip_global_norm,
    "clip_by_value-embedding": _clip_embedding_by_value,
    "times_half": _halve_gradients,
    "clip_by_norm": _clip_each_by_norm,
}


# Momentum where a sparse and a dense gradient give different weights (rows not in the batch
# move with a dense one), Adam where the clipping computes norms over every gradient.
CLIPPING_OPTIMIZER = {
    "clip_by_global_norm": "Adam",
    "clip_by_value-embedding": "Momentum",
    "times_half": "Momentum",
    "clip_by_norm": "Adam",
}


@pytest.mark.parametrize("clipping", list(CLIPPING))
def test_gradient_clipping_between_compute_and_apply(eng, tfv1, clipping):
    """compute_gradients -> clipping -> apply_gradients: the applied gradients and weights ==
    TF's (a dense `tf.multiply(g, 0.5)` of IndexedSlices moves every row under Momentum, as TF)."""
    build = functools.partial(
        build_ncf,
        make_optimizer=OPTIMIZERS[CLIPPING_OPTIMIZER[clipping]],
        transform=CLIPPING[clipping],
    )
    assert_traces_match(train(eng, build), train(tfv1, build))
