"""TF-1's tf.losses: per-element losses reduced by compute_weighted_loss with TF-1's exact
Reduction semantics (weights broadcast to the losses; SUM_BY_NONZERO_WEIGHTS by default),
each loss added to the graph's "losses" collection; regularization-loss helpers."""

from __future__ import annotations

import numpy as np

from engine import ops_array, ops_math
from engine.graph import Node, as_node
from engine.ops_nn import sigmoid_cross_entropy_with_logits, softmax_cross_entropy_with_logits_v2
from engine.ops_nn_common import static_dtype, static_shape
from engine.ops_nn_loss_reduction import (
    LOSSES,
    Reduction,
    add_loss,
    compute_weighted_loss,
    get_losses,
    get_regularization_loss,
    get_regularization_losses,
    get_total_loss,
)
from engine.ops_nn_loss_reduction import float32_node as _float32
from engine.ops_nn_loss_reduction import loss_scope as _scope
from engine.ops_nn_xent import (
    sparse_softmax_cross_entropy_with_logits,
)

__all__ = [
    "Reduction",
    "absolute_difference",
    "add_loss",
    "compute_weighted_loss",
    "cosine_distance",
    "get_losses",
    "get_regularization_loss",
    "get_regularization_losses",
    "get_total_loss",
    "hinge_loss",
    "huber_loss",
    "log_loss",
    "mean_squared_error",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
    "sparse_softmax_cross_entropy",
]


def _check_compatible(predictions, labels) -> None:
    p, q = static_shape(predictions), static_shape(labels)
    if not p.is_compatible_with(q):
        raise ValueError(f"Shapes {p} and {q} are incompatible")


def _pair(labels, predictions, what="predictions"):
    if labels is None:
        raise ValueError("Argument `labels` must not be None.")
    if predictions is None:
        raise ValueError(f"Argument `{what}` must not be None.")
    predictions, labels = _float32(predictions), _float32(labels)
    _check_compatible(predictions, labels)
    return labels, predictions


def mean_squared_error(
    labels,
    predictions,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted (predictions - labels) ** 2, reduced."""
    with _scope(scope, "mean_squared_error"):
        labels, predictions = _pair(labels, predictions)
        losses = ops_math.square(ops_math.subtract(predictions, labels))
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def absolute_difference(
    labels,
    predictions,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted |predictions - labels|, reduced."""
    with _scope(scope, "absolute_difference"):
        labels, predictions = _pair(labels, predictions)
        losses = ops_math.abs(ops_math.subtract(predictions, labels))
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def log_loss(
    labels,
    predictions,
    weights=1.0,
    epsilon=1e-7,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted -labels * log(p + eps) - (1 - labels) * log(1 - p + eps), reduced."""
    with _scope(scope, "log_loss"):
        labels, predictions = _pair(labels, predictions)
        positive = ops_math.multiply(labels, ops_math.log(ops_math.add(predictions, epsilon)))
        negative = ops_math.multiply(
            ops_math.subtract(1.0, labels),
            ops_math.log(ops_math.add(ops_math.subtract(1.0, predictions), epsilon)),
        )
        losses = ops_math.subtract(ops_math.negative(positive), negative)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def hinge_loss(
    labels,
    logits,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted max(0, 1 - (2 * labels - 1) * logits) for 0/1 labels, reduced."""
    with _scope(scope, "hinge_loss"):
        labels, logits = _pair(labels, logits, "logits")
        signs = ops_math.subtract(ops_math.multiply(labels, 2.0), 1.0)
        losses = ops_math.relu(ops_math.subtract(1.0, ops_math.multiply(signs, logits)))
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def huber_loss(
    labels,
    predictions,
    weights=1.0,
    delta=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted 0.5 * e ** 2 where |e| <= delta, else delta * (|e| - 0.5 * delta), reduced."""
    with _scope(scope, "huber_loss"):
        labels, predictions = _pair(labels, predictions)
        error = ops_math.abs(ops_math.subtract(predictions, labels))
        quadratic = ops_math.minimum(error, float(delta))
        linear = ops_math.subtract(error, quadratic)
        losses = ops_math.add(
            ops_math.multiply(0.5, ops_math.multiply(quadratic, quadratic)),
            ops_math.multiply(float(delta), linear),
        )
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def cosine_distance(
    labels,
    predictions,
    axis=None,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
    dim=None,
):
    """Weighted 1 - sum(labels * predictions, axis) (both unit-normalised along `axis`)."""
    if axis is not None and dim is not None and axis != dim:
        raise ValueError("cannot specify both 'axis' and 'dim'")
    axis = axis if axis is not None else dim
    if axis is None:
        raise ValueError("You must specify argument `axis`.")
    with _scope(scope, "cosine_distance_loss"):
        labels, predictions = _pair(labels, predictions)
        products = ops_math.multiply(predictions, labels)
        losses = ops_math.subtract(1.0, ops_array.reduce_sum(products, axis=axis, keepdims=True))
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def sigmoid_cross_entropy(
    multi_class_labels,
    logits,
    weights=1.0,
    label_smoothing=0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted sigmoid cross-entropy; labels smoothed towards 1/2 by `label_smoothing`."""
    with _scope(scope, "sigmoid_cross_entropy_loss"):
        labels = _cast_like(multi_class_labels, logits)
        if label_smoothing > 0:
            labels = ops_math.add(
                ops_math.multiply(labels, 1.0 - label_smoothing), 0.5 * label_smoothing
            )
        losses = sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def softmax_cross_entropy(
    onehot_labels,
    logits,
    weights=1.0,
    label_smoothing=0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted softmax cross-entropy per example; labels smoothed by `label_smoothing` over
    the classes; no gradient into the labels."""
    with _scope(scope, "softmax_cross_entropy_loss"):
        labels = _cast_like(onehot_labels, logits)
        if label_smoothing > 0:
            classes = static_shape(labels)[-1] or static_shape(logits)[-1]
            if classes is None:
                raise ValueError("softmax_cross_entropy: label_smoothing needs a known class count")
            labels = ops_math.add(
                ops_math.multiply(labels, 1.0 - label_smoothing), label_smoothing / classes
            )
        labels = ops_array.stop_gradient(labels)
        losses = softmax_cross_entropy_with_logits_v2(labels=labels, logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def sparse_softmax_cross_entropy(
    labels,
    logits,
    weights=1.0,
    scope=None,
    loss_collection=LOSSES,
    reduction=Reduction.SUM_BY_NONZERO_WEIGHTS,
):
    """Weighted sparse softmax cross-entropy per example (labels [N] or [N, 1] class ids)."""
    with _scope(scope, "sparse_softmax_cross_entropy_loss"):
        labels, weights = _squeeze_labels(labels, logits, weights)
        losses = sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        return compute_weighted_loss(losses, weights, None, loss_collection, reduction)


def _cast_like(labels, logits):
    dtype = static_dtype(logits) or np.float32
    labels = as_node(labels) if not isinstance(labels, Node) else labels
    return labels if static_dtype(labels) == dtype else ops_array.cast(labels, dtype)


def _squeeze_labels(labels, logits, weights):
    # TF-1's _remove_squeezable_dimensions: labels [N, 1] against logits [N, C] lose their last
    # dim; weights one rank above the labels lose theirs.
    from engine.ops_shape import squeeze

    label_shape, logit_shape = static_shape(labels), static_shape(logits)
    known = label_shape.rank is not None and logit_shape.rank is not None
    if known and label_shape.rank == logit_shape.rank and label_shape[-1] in (1, None):
        labels = squeeze(labels, [-1])
        label_shape = static_shape(labels)
    weight_shape = static_shape(weights)
    if (
        weight_shape.rank
        and label_shape.rank is not None
        and weight_shape.rank == label_shape.rank + 1
    ):
        weights = squeeze(weights, [-1])
    return labels, weights
