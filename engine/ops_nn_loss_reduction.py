"""tf.losses' reduction and collections: Reduction, compute_weighted_loss (TF-1's exact
semantics: weights broadcast to the losses, computed in float32), and the "losses" /
"regularization_losses" collection helpers."""

from __future__ import annotations

import contextlib

import numpy as np

from engine import ops_array, ops_math
from engine.graph import Node, as_node, get_default_graph
from engine.ops_nn_common import static_dtype, static_shape
from engine.ops_nn_xent import broadcast_sum, div_no_nan, num_elements, num_present

__all__ = [
    "LOSSES",
    "REGULARIZATION_LOSSES",
    "Reduction",
    "add_loss",
    "compute_weighted_loss",
    "float32_node",
    "get_losses",
    "get_regularization_loss",
    "get_regularization_losses",
    "get_total_loss",
    "loss_scope",
]

LOSSES = "losses"  # TF-1's GraphKeys.LOSSES
REGULARIZATION_LOSSES = "regularization_losses"  # TF-1's GraphKeys.REGULARIZATION_LOSSES


class Reduction:
    """How compute_weighted_loss reduces the weighted losses (TF-1's string values)."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls):
        """Every reduction."""
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key):
        """ValueError unless `key` is a reduction."""
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key}.")


def loss_scope(scope, default: str):
    """The graph's name scope `scope` (default `default`) as a context manager."""
    name_scope = getattr(get_default_graph(), "name_scope", None)
    return name_scope(scope or default) if name_scope else contextlib.nullcontext()


def float32_node(x):
    """x as a float32 node (cast when its dtype is known to differ)."""
    if isinstance(x, Node):
        return x if static_dtype(x) == np.float32 else ops_array.cast(x, np.float32)
    return as_node(np.asarray(x, dtype=np.float32))


def _check_broadcastable(weights, losses) -> None:
    # TF-1's assert_broadcastable: a scalar, or the losses' rank with each dim 1 or equal.
    w, v = static_shape(weights), static_shape(losses)
    if w.rank is None or v.rank is None or w.rank == 0:
        return
    if w.rank != v.rank:
        raise ValueError(
            f"weights can not be broadcast to values. values.rank={v.rank}. "
            f"weights.rank={w.rank}. values.shape={v}. weights.shape={w}."
        )
    for a, b in zip(w, v, strict=True):
        if a not in (None, 1) and b is not None and a != b:
            raise ValueError(f"weights can not be broadcast to values: {w} vs {v}")


def _add_to_collection(key, value) -> None:
    add = getattr(get_default_graph(), "add_to_collection", None)
    if add is not None and key:
        add(key, value)


def compute_weighted_loss(
    losses,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """losses * weights reduced by `reduction` (computed in float32, returned in losses' dtype);
    added to `loss_collection`."""
    Reduction.validate(reduction)
    _check_broadcastable(weights, losses)
    with loss_scope(scope, "weighted_loss"):
        input_dtype = static_dtype(losses)
        losses = float32_node(losses)
        scalar_weight = isinstance(weights, (int, float)) and not isinstance(weights, bool)
        weights_node = float32_node(weights) if not scalar_weight else float(weights)
        weighted = ops_math.multiply(losses, weights_node)
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            loss = ops_array.reduce_sum(weighted)
            if reduction == Reduction.MEAN:
                loss = div_no_nan(loss, broadcast_sum(losses, weights_node))
            elif reduction == Reduction.SUM_BY_NONZERO_WEIGHTS:
                count = (
                    num_elements(losses)
                    if scalar_weight and weights != 0.0
                    else num_present(losses, weights_node)
                )
                loss = div_no_nan(loss, count)
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = div_no_nan(loss, num_elements(losses))
        if input_dtype is not None and input_dtype != np.float32:
            loss = ops_array.cast(loss, input_dtype)
    _add_to_collection(loss_collection, loss)
    return loss


def add_loss(loss, loss_collection=LOSSES):
    """Add `loss` to the graph's `loss_collection`."""
    _add_to_collection(loss_collection, loss)


def get_losses(scope=None, loss_collection=LOSSES):
    """The losses in `loss_collection` (names starting with `scope` when given)."""
    get = getattr(get_default_graph(), "get_collection", None)
    return [] if get is None else get(loss_collection, scope)


def get_regularization_losses(scope=None):
    """The graph's regularization losses (get_variable's and the layers' regularizers)."""
    return get_losses(scope, REGULARIZATION_LOSSES)


def get_regularization_loss(scope=None, name="total_regularization_loss"):
    """The sum of the regularization losses, 0.0 when there are none."""
    losses = get_regularization_losses(scope)
    if not losses:
        return as_node(np.float32(0.0))
    return ops_math.add_n(losses, name=name)


def get_total_loss(add_regularization_losses=True, name="total_loss", scope=None):
    """The sum of the collected losses plus, by default, the regularization losses."""
    losses = get_losses(scope)
    if add_regularization_losses:
        losses = losses + get_regularization_losses(scope)
    if not losses:
        raise ValueError("No losses found in collections.")
    return ops_math.add_n(losses, name=name)
