"""Neural-network ops: softmax family, fused stable cross-entropies, dropout, l2_loss."""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Node, Operation

__all__ = [
    "dropout",
    "l2_loss",
    "log_softmax",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
]


def _log_softmax(xp, x, axis):
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


class Softmax(Operation):
    op_type = "softmax"

    def forward(self, xp, x):
        e = xp.exp(x - xp.max(x, axis=self.axis, keepdims=True))
        e /= xp.sum(e, axis=self.axis, keepdims=True)
        return e


class LogSoftmax(Operation):
    op_type = "log_softmax"

    def forward(self, xp, x):
        return _log_softmax(xp, x, self.axis)


class SigmoidCrossEntropyWithLogits(Operation):
    """Per-element max(x, 0) - x * z + log(1 + exp(-|x|)); inputs (logits, labels)."""

    op_type = "sigmoid_cross_entropy_with_logits"
    has_aux = True

    def forward(self, xp, x, z):
        e = xp.abs(x)
        xp.negative(e, out=e)
        xp.exp(e, out=e)  # exp(-|x|) in (0, 1]: never overflows
        loss = xp.maximum(x, 0)
        loss -= x * z
        loss += xp.log1p(e)
        # sigmoid(x) from the same exp: 1/(1+e) for x >= 0, e/(1+e) below.
        denom = e + 1
        sig = xp.where(x >= 0, 1, e)
        sig /= denom
        return loss, sig


class SoftmaxCrossEntropyWithLogits(Operation):
    """-sum(labels * log_softmax(logits)) over `axis`; inputs (logits, labels)."""

    op_type = "softmax_cross_entropy_with_logits"
    has_aux = True

    def forward(self, xp, x, z):
        logp = _log_softmax(xp, x, self.axis)
        return -xp.sum(z * logp, axis=self.axis), logp


class Dropout(Operation):
    """x * mask / (1 - rate) while training, x otherwise; inputs (x) or (x, training)."""

    op_type = "dropout"
    has_aux = True

    def kernel(self, xp, rng):
        rate, fixed = self.rate, self.training

        def run(x, training=None):
            on = fixed if training is None else bool(training)
            if not on or rate == 0.0:
                return x, None
            draw_dtype = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else "float64"
            keep = rng.random(x.shape, dtype=draw_dtype) >= rate
            mask = xp.multiply(keep, 1.0 / (1.0 - rate), dtype=x.dtype)
            return x * mask, mask

        return run

    def forward(self, xp, x, training=None):
        return self.kernel(xp, xp.random.default_rng())(x, training)


class L2Loss(Operation):
    op_type = "l2_loss"

    def forward(self, xp, x):
        x = xp.asarray(x)  # CuPy's sum refuses a Python-scalar constant
        return xp.sum(x * x) / 2


def softmax(x, axis=-1, name=None):
    """exp(x) / sum(exp(x)) over `axis`, shifted by the max so it never overflows."""
    return Softmax([x], name=name, axis=int(axis))


def log_softmax(x, axis=-1, name=None):
    """log(softmax(x)) computed stably."""
    return LogSoftmax([x], name=name, axis=int(axis))


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Element-wise logistic loss of `logits` against 0/1 (or soft) `labels`, fused and stable."""
    if labels is None or logits is None:
        raise ValueError("sigmoid_cross_entropy_with_logits needs both labels= and logits=")
    return SigmoidCrossEntropyWithLogits([logits, labels], name=name)


def softmax_cross_entropy_with_logits(labels=None, logits=None, axis=-1, name=None):
    """Cross-entropy of softmax(logits) against label distributions, fused and stable."""
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs both labels= and logits=")
    return SoftmaxCrossEntropyWithLogits([logits, labels], name=name, axis=int(axis))


def dropout(x, rate, training=True, name=None):
    """Zero each element with probability `rate` and scale the rest by 1/(1-rate).

    `training` is a bool, or a boolean node (e.g. a placeholder) switching it per run.
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if isinstance(training, Node):
        return Dropout([x, training], name=name, rate=rate, training=None)
    return Dropout([x], name=name, rate=rate, training=bool(training))


def l2_loss(x, name=None):
    """sum(x ** 2) / 2."""
    return L2Loss([x], name=name)


@RegisterGradient("softmax")
def _softmax_grad(op, g):
    p = op.output
    return (p * (g - (g * p).sum(axis=op.op.axis, keepdims=True)),)


@RegisterGradient("log_softmax")
def _log_softmax_grad(op, g):
    axis = op.op.axis
    return (g - op.xp.exp(op.output) * g.sum(axis=axis, keepdims=True),)


@RegisterGradient("sigmoid_cross_entropy_with_logits")
def _sigmoid_ce_grad(op, g):
    x, z = op.inputs
    return g * (op.aux - z), (g * -x if op.need[1] else None)


@RegisterGradient("softmax_cross_entropy_with_logits")
def _softmax_ce_grad(op, g):
    x, z = op.inputs
    axis = op.op.axis
    logp = op.aux
    g = op.xp.expand_dims(g, axis)
    # d/dx of -sum(z * log_softmax(x)) = softmax(x) * sum(z) - z (exact for unnormalised z).
    gx = g * (op.xp.exp(logp) * z.sum(axis=axis, keepdims=True) - z)
    return gx, (-g * logp if op.need[1] else None)


@RegisterGradient("dropout")
def _dropout_grad(op, g):
    mask = op.aux
    grads = (g if mask is None else g * mask,)
    return grads + (None,) * (len(op.inputs) - 1)


@RegisterGradient("l2_loss")
def _l2_loss_grad(op, g):
    return (g * op.inputs[0],)
