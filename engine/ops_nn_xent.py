"""tf.nn's remaining loss and metric ops: sparse softmax and weighted cross-entropies,
in_top_k, zero_fraction; plus div_no_nan and the counting ops tf.losses reduces with."""

from __future__ import annotations

import numpy as np

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.ops_nn import _log_softmax
from engine.ops_nn_common import check_same_shape, static_shape
from engine.shapes import TensorShape, broadcast_shape

__all__ = [
    "broadcast_sum",
    "div_no_nan",
    "in_top_k",
    "num_elements",
    "num_present",
    "sparse_softmax_cross_entropy_with_logits",
    "weighted_cross_entropy_with_logits",
    "zero_fraction",
]


class SparseSoftmaxCrossEntropyWithLogits(Operation):
    """-log_softmax(logits)[..., label]; inputs (logits [..., C], integer labels [...])."""

    op_type = "sparse_softmax_cross_entropy_with_logits"
    has_aux = True

    def forward(self, xp, x, labels):
        classes = x.shape[-1]
        labels = xp.asarray(labels)
        if labels.size:
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= classes:
                bad = low if low < 0 else high
                raise ValueError(
                    f"Received a label value of {bad} which is outside the valid range of "
                    f"[0, {classes})"
                )
        logp = _log_softmax(xp, x, -1)
        picked = xp.take_along_axis(logp, labels[..., None].astype(np.int64), axis=-1)
        return -picked[..., 0], logp

    def infer_shape(self, x, labels):
        if x.rank is None:
            return labels
        return x[:-1].merge_with(labels) if x[:-1].is_compatible_with(labels) else labels

    def infer_dtype(self, x_dtype, labels_dtype):
        return x_dtype


class WeightedCrossEntropyWithLogits(Operation):
    """(1 - z) * x + (1 + (q - 1) * z) * log(1 + exp(-x)); inputs (logits, labels, pos_weight)."""

    op_type = "weighted_cross_entropy_with_logits"

    def forward(self, xp, x, z, q):
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        return (1 - z) * x + (1 + (q - 1) * z) * softplus_neg

    def infer_shape(self, x, z, q):
        return broadcast_shape(broadcast_shape(x, z), q)


class InTopK(Operation):
    """Whether each row's target class is among its k largest predictions (ties count in)."""

    op_type = "in_top_k"

    def forward(self, xp, predictions, targets):
        targets = xp.asarray(targets).astype(np.int64)
        rows = xp.arange(predictions.shape[0])
        inside = (targets >= 0) & (targets < predictions.shape[1])
        value = predictions[rows, xp.clip(targets, 0, predictions.shape[1] - 1)]
        above = (predictions > value[:, None]).sum(axis=1)
        return inside & xp.isfinite(value) & (above < self.k)

    def infer_shape(self, predictions, targets):
        return targets if predictions.rank is None else TensorShape(predictions[:1])

    def infer_dtype(self, *dtypes):
        return np.dtype(bool)


class ZeroFraction(Operation):
    op_type = "zero_fraction"

    def forward(self, xp, value):
        value = xp.asarray(value)
        return xp.asarray(xp.count_nonzero(value == 0) / max(value.size, 1), dtype=np.float32)

    def infer_shape(self, value):
        return TensorShape(())

    def infer_dtype(self, dtype):
        return np.dtype(np.float32)


class DivNoNan(Operation):
    """x / y, and 0 where y == 0 (TF's div_no_nan)."""

    op_type = "div_no_nan"

    def forward(self, xp, x, y):
        y = xp.asarray(y)
        safe = xp.where(y == 0, 1, y)
        return xp.where(y == 0, 0, x / safe)

    def infer_shape(self, x, y):
        return broadcast_shape(x, y)


class NumPresent(Operation):
    """How many elements of `losses` get a non-zero weight once weights broadcast to them."""

    op_type = "num_present"

    def forward(self, xp, losses, weights):
        present = xp.asarray(weights) != 0
        shape = np.broadcast_shapes(np.shape(losses), present.shape)
        return xp.asarray(xp.broadcast_to(present, shape).sum(), dtype=np.float32)

    def infer_shape(self, losses, weights):
        return TensorShape(())

    def infer_dtype(self, *dtypes):
        return np.dtype(np.float32)


class BroadcastSum(Operation):
    """sum(weights broadcast to the shape of losses): the MEAN reduction's denominator."""

    op_type = "broadcast_sum"

    def forward(self, xp, losses, weights):
        weights = xp.asarray(weights)
        shape = np.broadcast_shapes(np.shape(losses), weights.shape)
        return xp.broadcast_to(weights, shape).sum()

    def infer_shape(self, losses, weights):
        return TensorShape(())


class NumElements(Operation):
    op_type = "num_elements"

    def forward(self, xp, losses):
        return xp.asarray(xp.asarray(losses).size, dtype=np.float32)

    def infer_shape(self, losses):
        return TensorShape(())

    def infer_dtype(self, *dtypes):
        return np.dtype(np.float32)


def sparse_softmax_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Cross-entropy of softmax(logits) against integer class `labels` (rank of logits - 1),
    fused: the gradient is softmax(logits) - one_hot(labels); labels get none."""
    if labels is None or logits is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs labels= and logits=")
    label_shape, logit_shape = static_shape(labels), static_shape(logits)
    if label_shape.rank is not None and logit_shape.rank is not None:
        if label_shape.rank != logit_shape.rank - 1:
            raise ValueError(
                f"Rank mismatch: Rank of labels (received {label_shape.rank}) should equal rank "
                f"of logits minus 1 (received {logit_shape.rank})."
            )
        if not logit_shape[:-1].is_compatible_with(label_shape):
            raise ValueError(
                f"sparse_softmax_cross_entropy_with_logits: labels shape {label_shape} does not "
                f"match logits shape {logit_shape} without its last dimension"
            )
    return SparseSoftmaxCrossEntropyWithLogits([logits, labels], name=name)


def weighted_cross_entropy_with_logits(
    labels=None, logits=None, pos_weight=None, name=None, targets=None
):
    """Sigmoid cross-entropy whose positive term is weighted by `pos_weight` (TF-1 formula)."""
    if labels is not None and targets is not None:
        raise ValueError("weighted_cross_entropy_with_logits: pass labels or targets, not both")
    labels = targets if labels is None else labels
    if labels is None or logits is None or pos_weight is None:
        raise ValueError("weighted_cross_entropy_with_logits needs labels, logits and pos_weight")
    check_same_shape("weighted_cross_entropy_with_logits", labels, logits)
    return WeightedCrossEntropyWithLogits([logits, labels, pos_weight], name=name)


def in_top_k(predictions, targets, k, name=None):
    """A bool per row: whether `targets[i]` is among the top `k` of `predictions[i]` (a class
    whose prediction ties the k-th is in, as TF; a non-finite prediction is not)."""
    return InTopK([predictions, targets], name=name, k=int(k))


def zero_fraction(value, name=None):
    """The fraction of zeros in `value` (float32 scalar)."""
    return ZeroFraction([value], name=name)


def div_no_nan(x, y, name=None):
    """x / y, 0 where y is 0 (value and gradient)."""
    return DivNoNan([x, y], name=name)


def num_present(losses, weights, name=None):
    """The number of elements of `losses` with a non-zero (broadcast) weight, float32."""
    return NumPresent([losses, weights], name=name)


def broadcast_sum(losses, weights, name=None):
    """sum(weights broadcast to losses' shape); the gradient flows to weights only."""
    return BroadcastSum([losses, weights], name=name)


def num_elements(losses, name=None):
    """The number of elements of `losses`, float32."""
    return NumElements([losses], name=name)


NotDifferentiable("in_top_k")
NotDifferentiable("zero_fraction")
NotDifferentiable("num_present")
NotDifferentiable("num_elements")


@RegisterGradient("sparse_softmax_cross_entropy_with_logits")
def _sparse_softmax_ce_grad(op, g):
    xp = op.xp
    logits, labels = op.inputs
    probs = xp.exp(op.aux)
    classes = probs.shape[-1]
    flat = probs.reshape(-1, classes)
    flat[xp.arange(flat.shape[0]), xp.asarray(labels).reshape(-1)] -= 1
    return xp.expand_dims(g, -1) * probs, None


@RegisterGradient("weighted_cross_entropy_with_logits")
def _weighted_ce_grad(op, g):
    xp = op.xp
    x, z, q = op.inputs
    sigmoid_neg = 0.5 * (1 - xp.tanh(0.5 * x))  # sigmoid(-x), stable
    softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
    log_weight = 1 + (q - 1) * z
    grad_x = g * ((1 - z) - log_weight * sigmoid_neg)
    grad_z = g * (-x + (q - 1) * softplus_neg) if op.need[1] else None
    grad_q = g * z * softplus_neg if op.need[2] else None
    return grad_x, grad_z, grad_q


@RegisterGradient("broadcast_sum")
def _broadcast_sum_grad(op, g):
    losses, weights = op.inputs
    shape = np.broadcast_shapes(np.shape(losses), np.shape(weights))
    return None, op.xp.full(shape, g, dtype=op.xp.asarray(weights).dtype)


@RegisterGradient("div_no_nan")
def _div_no_nan_grad(op, g):
    xp = op.xp
    x, y = op.inputs
    y = xp.asarray(y)
    zero = y == 0
    safe = xp.where(zero, 1, y)
    grad_x = xp.where(zero, 0, g / safe)
    grad_y = xp.where(zero, 0, -g * x / (safe * safe)) if op.need[1] else None
    return grad_x, grad_y
