"""Matrix products: matmul (numpy semantics) and the fused dense layer, with gradients."""

from __future__ import annotations

from engine.autodiff import RegisterGradient, sum_rows
from engine.graph import Operation
from engine.ops_math import _relu_mask_grad, _sigmoid

__all__ = ["FUSED_ACTIVATIONS", "fused_dense", "matmul"]


class Matmul(Operation):
    op_type = "matmul"

    def forward(self, xp, a, b):
        return a @ b


FUSED_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


class FusedDense(Operation):
    """activation(x @ W + b) for 2-D x; inputs (x, W) or (x, W, b)."""

    op_type = "fused_dense"

    def forward(self, xp, x, w, b=None):
        out = x @ w
        if b is not None:
            out += b
        act = self.activation
        if act == "relu":
            xp.maximum(out, 0, out=out)
        elif act == "sigmoid":
            out = _sigmoid(xp, out)
        elif act == "tanh":
            xp.tanh(out, out=out)
        return out


def matmul(a, b, name=None):
    """a @ b with numpy semantics (1-D operands and batch dimensions allowed)."""
    return Matmul([a, b], name=name)


def fused_dense(x, w, b=None, activation="linear", name=None):
    """activation(x @ w + b) as one op (x 2-D); activation in FUSED_ACTIVATIONS."""
    if activation is None:
        activation = "linear"
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(
            f"fused_dense: activation must be one of {FUSED_ACTIVATIONS}, got {activation!r}"
        )
    inputs = [x, w] if b is None else [x, w, b]
    return FusedDense(inputs, name=name, activation=activation)


def _matmul_grads(xp, a, b, g, need):
    if a.ndim == 2 and b.ndim == 2:
        ga = None
        if need[0]:
            # An outer product (inner size 1) is far faster as a broadcast multiply than a GEMM.
            ga = g * b.reshape(1, -1) if b.shape[1] == 1 else g @ b.T
        return ga, (a.T @ g if need[1] else None)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = xp.expand_dims(g2, -2)
    if b.ndim == 1:
        g2 = xp.expand_dims(g2, -1)
    ga = gb = None
    if need[0]:
        ga = g2 @ xp.swapaxes(b2, -1, -2)
        if a.ndim == 1:
            ga = ga[..., 0, :]
    if need[1]:
        gb = xp.swapaxes(a2, -1, -2) @ g2
        if b.ndim == 1:
            gb = gb[..., 0]
    return ga, gb


@RegisterGradient("matmul")
def _matmul_grad(op, g):
    a, b = op.inputs
    return _matmul_grads(op.xp, a, b, g, op.need)


@RegisterGradient("fused_dense")
def _fused_dense_grad(op, g):
    out = op.output
    act = op.op.activation
    if act == "relu":
        g = _relu_mask_grad(op.xp, g, out)
    elif act == "sigmoid":
        g = g * out * (1 - out)
    elif act == "tanh":
        g = g * (1 - out * out)
    x, w = op.inputs[0], op.inputs[1]
    gx, gw = _matmul_grads(op.xp, x, w, g, op.need)
    if len(op.inputs) == 2:
        return gx, gw
    return gx, gw, sum_rows(op.xp, g)
