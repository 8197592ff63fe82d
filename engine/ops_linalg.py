"""Matrix products: matmul (TF-1's flags), the fused dense layer and tensordot, with gradients.

matmul follows numpy's `@` (1-D operands, broadcast batch dimensions) and TF-1's
transpose_a / transpose_b (adjoint_* are the same for real values): a flag swaps the last two
dimensions of its operand, as a view, so the GEMM reads it transposed without a copy.
"""

from __future__ import annotations

from engine.autodiff import RegisterGradient, sum_rows
from engine.graph import Operation
from engine.ops_math import _relu_mask_grad, _sigmoid
from engine.shape_helpers import format_shape, static_shape_of
from engine.shapes import TensorShape, broadcast_shape

__all__ = ["FUSED_ACTIVATIONS", "fused_dense", "matmul", "tensordot"]


def _product_shape(a: TensorShape, b: TensorShape, transpose_a=False, transpose_b=False):
    """(result shape, (inner dim of a, inner dim of b)) of a @ b after the flags; the shape
    is None where a rank is unknown."""
    if a.rank is None or b.rank is None or a.rank == 0 or b.rank == 0:
        return None, (None, None)
    a_dims, b_dims = list(a), list(b)
    if transpose_a and len(a_dims) >= 2:
        a_dims[-2:] = a_dims[-1:-3:-1]
    if transpose_b and len(b_dims) >= 2:
        b_dims[-2:] = b_dims[-1:-3:-1]
    inner = (a_dims[-1], b_dims[-2] if len(b_dims) >= 2 else b_dims[0])
    rows = a_dims[-2:-1]  # [] for a vector
    cols = b_dims[-1:] if len(b_dims) >= 2 else []
    try:
        batch = broadcast_shape(a_dims[:-2], b_dims[:-2])
    except ValueError:
        batch = TensorShape([None] * max(len(a_dims) - 2, len(b_dims) - 2, 0))
    return [*batch, *rows, *cols], inner


class Matmul(Operation):
    op_type = "matmul"
    # Graphs saved before the flags existed have no such attrs: these defaults stand in.
    transpose_a = False
    transpose_b = False

    def forward(self, xp, a, b):
        if self.transpose_a:
            a = xp.swapaxes(a, -1, -2)
        if self.transpose_b:
            b = xp.swapaxes(b, -1, -2)
        return a @ b

    def infer_shape(self, a, b):
        return _product_shape(a, b, self.transpose_a, self.transpose_b)[0]


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

    def infer_shape(self, x, w, b=None):
        return _product_shape(x, w)[0]


def _check_inner(what, op_name, a_shape, b_shape, flag_a=False, flag_b=False) -> None:
    _, (inner_a, inner_b) = _product_shape(a_shape, b_shape, flag_a, flag_b)
    if inner_a is not None and inner_b is not None and inner_a != inner_b:
        raise ValueError(
            f"{what}: Dimensions must be equal, but are {inner_a} and {inner_b} for "
            f"{op_name!r} (op: 'MatMul') with input shapes: {format_shape(a_shape)}, "
            f"{format_shape(b_shape)}."
        )


def matmul(
    a,
    b,
    transpose_a=False,
    transpose_b=False,
    adjoint_a=False,
    adjoint_b=False,
    a_is_sparse=False,
    b_is_sparse=False,
    name=None,
):
    """a @ b (numpy semantics: 1-D operands and broadcast batch dimensions allowed), each
    operand's last two dimensions swapped first when its transpose_*/adjoint_* flag is set;
    a_is_sparse / b_is_sparse are hints, ignored.  ValueError at build time when the inner
    dimensions are known and differ."""
    if transpose_a and adjoint_a or transpose_b and adjoint_b:
        raise ValueError("matmul: only one of transpose_x and adjoint_x can be True")
    flag_a, flag_b = bool(transpose_a or adjoint_a), bool(transpose_b or adjoint_b)
    a_shape, b_shape = static_shape_of(a), static_shape_of(b)
    op_name = name or "matmul"
    for flag, shape, which in ((flag_a, a_shape, "a"), (flag_b, b_shape, "b")):
        if flag and shape.rank is not None and shape.rank < 2:
            raise ValueError(
                f"matmul: transposing {which} needs rank >= 2, got shape {format_shape(shape)} "
                f"for {op_name!r}"
            )
    _check_inner("matmul", op_name, a_shape, b_shape, flag_a, flag_b)
    return Matmul([a, b], name=name, transpose_a=flag_a, transpose_b=flag_b)


def fused_dense(x, w, b=None, activation="linear", name=None):
    """activation(x @ w + b) as one op (x 2-D); activation in FUSED_ACTIVATIONS."""
    if activation is None:
        activation = "linear"
    if activation not in FUSED_ACTIVATIONS:
        raise ValueError(
            f"fused_dense: activation must be one of {FUSED_ACTIVATIONS}, got {activation!r}"
        )
    _check_inner("fused_dense", name or "fused_dense", static_shape_of(x), static_shape_of(w))
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
    xp = op.xp
    flag_a, flag_b = op.op.transpose_a, op.op.transpose_b
    if not (flag_a or flag_b):
        return _matmul_grads(xp, a, b, g, op.need)
    # The gradient w.r.t. the transposed view, transposed back (views all the way: no copies).
    ga, gb = _matmul_grads(
        xp,
        xp.swapaxes(a, -1, -2) if flag_a else a,
        xp.swapaxes(b, -1, -2) if flag_b else b,
        g,
        op.need,
    )
    if flag_a and ga is not None:
        ga = xp.swapaxes(ga, -1, -2)
    if flag_b and gb is not None:
        gb = xp.swapaxes(gb, -1, -2)
    return ga, gb


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


def _tensordot_axes(axes, ndim_a: int, ndim_b: int) -> tuple[list[int], list[int]]:
    """(contracted axes of a, of b), non-negative, from an int N or a pair of lists."""
    if isinstance(axes, int):
        return list(range(ndim_a - axes, ndim_a)), list(range(axes))
    axes_a, axes_b = axes
    return [a % ndim_a for a in axes_a], [b % ndim_b for b in axes_b]


def _free(contracted: list[int], ndim: int) -> list[int]:
    return [i for i in range(ndim) if i not in contracted]


def _inverse(perm: list[int]) -> list[int]:
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return inverse


class Tensordot(Operation):
    """sum over a's axes_a and b's axes_b of a * b: a's free dims, then b's."""

    op_type = "tensordot"

    def forward(self, xp, a, b):
        return xp.tensordot(a, b, axes=_tensordot_axes(self.attrs["axes"], a.ndim, b.ndim))

    def infer_shape(self, a, b):
        if a.rank is None or b.rank is None:
            return None
        axes_a, axes_b = _tensordot_axes(self.attrs["axes"], a.rank, b.rank)
        return [a[i] for i in _free(axes_a, a.rank)] + [b[i] for i in _free(axes_b, b.rank)]


@RegisterGradient("tensordot")
def _tensordot_grad(op, g):
    a, b = op.inputs
    xp = op.xp
    axes_a, axes_b = _tensordot_axes(op.op.attrs["axes"], a.ndim, b.ndim)
    free_a, free_b = _free(axes_a, a.ndim), _free(axes_b, b.ndim)
    n_free_a = len(free_a)
    g_b_part = list(range(n_free_a, g.ndim))
    ga = gb = None
    if op.need[0]:
        # g . b over b's free axes leaves a's free axes, then b's contracted ones in b's order.
        ga = xp.tensordot(g, b, axes=(g_b_part, free_b))
        order = sorted(range(len(axes_b)), key=lambda j: axes_b[j])
        ga = xp.transpose(ga, _inverse(free_a + [axes_a[j] for j in order]))
    if op.need[1]:
        gb = xp.tensordot(a, g, axes=(free_a, list(range(n_free_a))))
        order = sorted(range(len(axes_a)), key=lambda j: axes_a[j])
        gb = xp.transpose(gb, _inverse([axes_b[j] for j in order] + free_b))
    return ga, gb


def tensordot(a, b, axes, name=None):
    """The sum of a * b over a's `axes[0]` and b's `axes[1]` (an int N: a's last N and b's
    first N); the result has a's remaining dimensions, then b's."""
    a_shape, b_shape = static_shape_of(a), static_shape_of(b)
    if isinstance(axes, int) or getattr(axes, "ndim", None) == 0:
        axes = int(axes)
        if axes < 0:
            raise ValueError(f"tensordot: axes must be non-negative, got {axes}")
        attr = axes
    else:
        axes_a, axes_b = axes
        axes_a = [int(axes_a)] if isinstance(axes_a, int) else [int(i) for i in axes_a]
        axes_b = [int(axes_b)] if isinstance(axes_b, int) else [int(i) for i in axes_b]
        if len(axes_a) != len(axes_b):
            raise ValueError(f"tensordot: axes {axes_a} and {axes_b} differ in length")
        attr = [axes_a, axes_b]
    if a_shape.rank is not None and b_shape.rank is not None:
        pairs = zip(*_tensordot_axes(attr, a_shape.rank, b_shape.rank), strict=True)
        for i, j in pairs:
            if a_shape[i] is not None and b_shape[j] is not None and a_shape[i] != b_shape[j]:
                raise ValueError(
                    f"tensordot: Dimensions must be equal, but are {a_shape[i]} and "
                    f"{b_shape[j]} (a's axis {i}, b's axis {j}) for input shapes "
                    f"{format_shape(a_shape)}, {format_shape(b_shape)}"
                )
    return Tensordot([a, b], name=name or "Tensordot", axes=attr)
