"""Neural-network ops: softmax family, fused stable cross-entropies, dropout, l2_loss.

These names also reach the top level (the engine's own spelling, e.g. `tf.softmax`); TF-1
spells them under `tf.nn` (engine/nn.py), with the same functions.
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.backend import make_rng
from engine.graph import Node, Operation
from engine.ops_array import stop_gradient
from engine.ops_nn_common import check_same_shape
from engine.shapes import TensorShape, broadcast_shape

__all__ = [
    "dropout",
    "l2_loss",
    "log_softmax",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
]


def _log_softmax(xp, x, axis):
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def _axis(axis, dim, default=-1) -> int:
    # TF-1 spells the axis `dim` in older code; both given and different is an error there too.
    if axis is not None and dim is not None and axis != dim:
        raise ValueError(f"cannot specify both 'axis' ({axis}) and 'dim' ({dim})")
    chosen = axis if axis is not None else dim
    return default if chosen is None else int(chosen)


class Softmax(Operation):
    op_type = "softmax"

    def forward(self, xp, x):
        e = xp.exp(x - xp.max(x, axis=self.axis, keepdims=True))
        e /= xp.sum(e, axis=self.axis, keepdims=True)
        return e

    def infer_shape(self, x):
        return x


class LogSoftmax(Operation):
    op_type = "log_softmax"

    def forward(self, xp, x):
        return _log_softmax(xp, x, self.axis)

    def infer_shape(self, x):
        return x


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

    def infer_shape(self, x, z):
        return broadcast_shape(x, z) if x.is_compatible_with(z) else x


class SoftmaxCrossEntropyWithLogits(Operation):
    """-sum(labels * log_softmax(logits)) over `axis`; inputs (logits, labels)."""

    op_type = "softmax_cross_entropy_with_logits"
    has_aux = True

    def forward(self, xp, x, z):
        logp = _log_softmax(xp, x, self.axis)
        return -xp.sum(z * logp, axis=self.axis), logp

    def infer_shape(self, x, z):
        shape = x.merge_with(z) if x.is_compatible_with(z) else x
        if shape.rank is None:
            return shape
        dims = list(shape)
        del dims[self.axis % len(dims)]
        return TensorShape(dims)


class Dropout(Operation):
    """x * mask / (1 - rate) while training, x otherwise.

    Inputs: x, then the rate (or keep_prob) when it is a node (`rate_from`), then the training
    flag when it is a node (`training` None).  A mask of `noise_shape` broadcasts over x.
    """

    op_type = "dropout"
    has_aux = True
    # Defaults for graphs saved before these attrs existed (from_attrs skips __init__).
    rate_from = None  # None: the `rate` attr; "rate" / "keep_prob": input 1 holds it
    noise_shape = None
    seed = None

    def kernel(self, xp, rng):
        fixed_rate, fixed_training = self.rate, self.training
        rate_from, noise_shape = self.rate_from, self.noise_shape
        if self.seed is not None:  # an op seed: its own stream, reproducible per graph seed
            rng = make_rng(xp, (self.graph.seed or 0) * 1_000_003 + int(self.seed))

        def run(x, *rest):
            rest = list(rest)
            rate = fixed_rate
            if rate_from is not None:
                given = float(rest.pop(0))
                rate = 1.0 - given if rate_from == "keep_prob" else given
                _check_rate(rate, rate_from, given)
            on = fixed_training if fixed_training is not None else bool(rest.pop(0))
            if not on or rate == 0.0:
                return x, None
            draw_dtype = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else "float64"
            shape = x.shape if noise_shape is None else tuple(noise_shape)
            keep = rng.random(shape, dtype=draw_dtype) >= rate
            mask = xp.multiply(keep, 1.0 / (1.0 - rate), dtype=x.dtype)
            return x * mask, mask

        return run

    def forward(self, xp, x, *rest):
        return self.kernel(xp, xp.random.default_rng())(x, *rest)

    def infer_shape(self, x, *rest):
        return x


def _check_rate(rate: float, given_as: str, given: float) -> None:
    if not 0.0 <= rate < 1.0:
        allowed = "(0, 1]" if given_as == "keep_prob" else "[0, 1)"
        raise ValueError(f"dropout: {given_as} must be in {allowed}, got {given}")


class L2Loss(Operation):
    op_type = "l2_loss"

    def forward(self, xp, x):
        x = xp.asarray(x)  # CuPy's sum refuses a Python-scalar constant
        return xp.sum(x * x) / 2

    def infer_shape(self, x):
        return TensorShape(())


def softmax(logits, axis=None, name=None, dim=None):
    """exp(x) / sum(exp(x)) over `axis` (default -1), shifted by the max so it never overflows."""
    return Softmax([logits], name=name, axis=_axis(axis, dim))


def log_softmax(logits, axis=None, name=None, dim=None):
    """log(softmax(x)) over `axis` (default -1), computed stably."""
    return LogSoftmax([logits], name=name, axis=_axis(axis, dim))


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """Element-wise logistic loss of `logits` against 0/1 (or soft) `labels`, fused and stable.

    labels and logits must have the same shape (a ValueError at build time when known)."""
    if labels is None or logits is None:
        raise ValueError("sigmoid_cross_entropy_with_logits needs both labels= and logits=")
    check_same_shape("sigmoid_cross_entropy_with_logits", labels, logits)
    return SigmoidCrossEntropyWithLogits([logits, labels], name=name)


def softmax_cross_entropy_with_logits_v2(labels, logits, axis=None, name=None, dim=None):
    """Cross-entropy of softmax(logits) against label distributions over `axis` (default -1),
    fused and stable; the gradient flows into labels too (TF-1's _v2)."""
    check_same_shape("softmax_cross_entropy_with_logits", labels, logits)
    return SoftmaxCrossEntropyWithLogits([logits, labels], name=name, axis=_axis(axis, dim))


def softmax_cross_entropy_with_logits(labels=None, logits=None, dim=-1, name=None, axis=None):
    """TF-1's v1 softmax cross-entropy: as _v2, but no gradient flows into labels."""
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs both labels= and logits=")
    if isinstance(labels, Node):
        labels = stop_gradient(labels)
    axis = _axis(axis, None if dim == -1 else dim)
    return softmax_cross_entropy_with_logits_v2(labels, logits, axis=axis, name=name)


def dropout(x, keep_prob=None, noise_shape=None, seed=None, name=None, rate=None, training=True):
    """Zero each element with probability `rate` (= 1 - keep_prob) and scale the rest by
    1 / (1 - rate); TF-1's signature (`dropout(x, 0.9)` keeps 90 %).

    `keep_prob` / `rate` may be nodes (fed per run).  `training` (the engine's extension) is a
    bool, or a boolean node switching dropout per run.  `noise_shape` (a list) broadcasts one
    draw over x's other dims; `seed` gives this op its own reproducible random stream.
    """
    if keep_prob is not None and rate is not None:
        raise ValueError("dropout: pass keep_prob or rate, not both")
    if keep_prob is None and rate is None:
        raise ValueError("dropout: you must provide a rate (or keep_prob)")
    given_as, given = ("rate", rate) if rate is not None else ("keep_prob", keep_prob)
    inputs = [x]
    attrs = {"rate": None, "rate_from": None}
    if isinstance(given, Node):
        inputs.append(given)
        attrs["rate_from"] = given_as
    else:
        value = float(given)
        attrs["rate"] = 1.0 - value if given_as == "keep_prob" else value
        _check_rate(attrs["rate"], given_as, value)
    if isinstance(training, Node):
        inputs.append(training)
        attrs["training"] = None
    else:
        attrs["training"] = bool(training)
    attrs["noise_shape"] = None if noise_shape is None else [int(d) for d in noise_shape]
    attrs["seed"] = None if seed is None else int(seed)
    return Dropout(inputs, name=name, **attrs)


def l2_loss(t, name=None):
    """sum(t ** 2) / 2."""
    return L2Loss([t], name=name)


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
