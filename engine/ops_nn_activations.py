"""tf.nn activations beyond the element-wise math family, and bias_add (its own op type, so
plan fusion can recognise matmul + bias_add + activation)."""

from __future__ import annotations

from engine import ops_array, ops_math
from engine.autodiff import RegisterGradient, sum_rows
from engine.graph import Operation
from engine.ops_linalg import matmul
from engine.ops_nn_common import static_shape
from engine.shapes import broadcast_shape

__all__ = [
    "bias_add",
    "crelu",
    "elu",
    "leaky_relu",
    "relu6",
    "relu_layer",
    "selu",
    "softsign",
    "swish",
    "xw_plus_b",
]

# SELU's constants (Klambauer et al. 2017), as TF-1 spells them.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class _SameShape:
    # A mixin, not an Operation subclass: those register as op types.
    def infer_shape(self, x):
        return x


class Relu6(_SameShape, Operation):
    op_type = "relu6"

    def forward(self, xp, x):
        return xp.clip(x, 0, 6)


class Elu(_SameShape, Operation):
    op_type = "elu"

    def forward(self, xp, x):
        return xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0)))


class Selu(_SameShape, Operation):
    op_type = "selu"

    def forward(self, xp, x):
        negative = SELU_ALPHA * xp.expm1(xp.minimum(x, 0))
        return SELU_SCALE * xp.where(x > 0, x, negative)


class LeakyRelu(_SameShape, Operation):
    op_type = "leaky_relu"

    def forward(self, xp, x):
        return xp.where(x > 0, x, x * self.alpha)


class Softsign(_SameShape, Operation):
    op_type = "softsign"

    def forward(self, xp, x):
        return x / (1 + xp.abs(x))


class BiasAdd(Operation):
    """value + bias along the channel axis: the last (NHWC, default) or 1 (NCHW)."""

    op_type = "bias_add"

    def forward(self, xp, value, bias):
        if self.data_format == "NCHW" and value.ndim > 2:
            bias = bias.reshape((-1,) + (1,) * (value.ndim - 2))
        return value + bias

    def infer_shape(self, value, bias):
        if self.data_format == "NCHW" or value.rank is None:
            return value
        return broadcast_shape(value, bias)


def _channel_axis(data_format: str, ndim: int) -> int:
    return 1 if data_format == "NCHW" and ndim > 2 else ndim - 1


def relu6(features, name=None):
    """min(max(features, 0), 6)."""
    return Relu6([features], name=name)


def elu(features, name=None):
    """features where positive, exp(features) - 1 elsewhere."""
    return Elu([features], name=name)


def selu(features, name=None):
    """scale * elu-like(features) with SELU's alpha and scale (self-normalising)."""
    return Selu([features], name=name)


def leaky_relu(features, alpha=0.2, name=None):
    """features where positive, alpha * features elsewhere."""
    return LeakyRelu([features], name=name, alpha=float(alpha))


def softsign(features, name=None):
    """features / (1 + |features|)."""
    return Softsign([features], name=name)


def crelu(features, name=None, axis=-1):
    """concat([relu(features), relu(-features)], axis): twice the channels."""
    positive = ops_math.relu(features)
    negative = ops_math.relu(ops_math.negative(features))
    return ops_array.concat([positive, negative], axis, name=name)


def swish(features, beta=1.0):
    """features * sigmoid(beta * features) (TF's nn.swish / silu)."""
    inner = features if beta == 1.0 else ops_math.multiply(features, float(beta))
    return ops_math.multiply(features, ops_math.sigmoid(inner))


def bias_add(value, bias, data_format=None, name=None):
    """value + bias, bias a vector over value's channel axis (last for NHWC, the default;
    1 for NCHW).  A ValueError at build time when the sizes are known and differ."""
    data_format = data_format or "NHWC"
    if data_format not in ("NHWC", "NCHW", "N..C", "NC.."):
        raise ValueError(f"bias_add: unknown data_format {data_format!r}")
    data_format = "NCHW" if data_format.startswith("NC") else "NHWC"
    value_shape, bias_shape = static_shape(value), static_shape(bias)
    if bias_shape.rank is not None and bias_shape.rank != 1:
        raise ValueError(f"bias_add: bias must be 1-D, got shape {bias_shape}")
    if value_shape.rank is not None:
        if value_shape.rank < 2:
            raise ValueError(f"bias_add: value must be at least 2-D, got shape {value_shape}")
        channels = value_shape[_channel_axis(data_format, value_shape.rank)]
        known = bias_shape.rank == 1 and None not in (channels, bias_shape[0])
        if known and channels != bias_shape[0]:
            raise ValueError(
                f"bias_add: Dimensions must be equal, but are {channels} and "
                f"{bias_shape[0]} for value shape {value_shape} and bias shape {bias_shape}"
            )
    return BiasAdd([value, bias], name=name, data_format=data_format)


def xw_plus_b(x, weights, biases, name=None):
    """matmul(x, weights) + biases (TF-1's nn.xw_plus_b)."""
    return bias_add(matmul(x, weights), biases, name=name)


def relu_layer(x, weights, biases, name=None):
    """relu(matmul(x, weights) + biases) (TF-1's nn.relu_layer)."""
    return ops_math.relu(bias_add(matmul(x, weights), biases), name=name)


@RegisterGradient("relu6")
def _relu6_grad(op, g):
    x = op.inputs[0]
    return (g * ((x > 0) & (x < 6)),)


@RegisterGradient("elu")
def _elu_grad(op, g):
    x, out = op.inputs[0], op.output
    return (op.xp.where(x > 0, g, g * (out + 1)),)


@RegisterGradient("selu")
def _selu_grad(op, g):
    x, out = op.inputs[0], op.output
    return (op.xp.where(x > 0, g * SELU_SCALE, g * (out + SELU_SCALE * SELU_ALPHA)),)


@RegisterGradient("leaky_relu")
def _leaky_relu_grad(op, g):
    x = op.inputs[0]
    return (op.xp.where(x > 0, g, g * op.op.alpha),)


@RegisterGradient("softsign")
def _softsign_grad(op, g):
    x = op.inputs[0]
    return (g / op.xp.square(1 + op.xp.abs(x)),)


@RegisterGradient("bias_add")
def _bias_add_grad(op, g):
    value = op.inputs[0]
    if not op.need[1]:
        return g, None
    axis = _channel_axis(op.op.data_format, value.ndim)
    if axis == value.ndim - 1:
        grad_bias = sum_rows(op.xp, g.reshape(-1, g.shape[-1]))
    else:
        grad_bias = g.sum(axis=tuple(a for a in range(g.ndim) if a != axis))
    return g, grad_bias
