"""Element-wise arithmetic and activations, with their gradients (TF-1 names).

Binary ops broadcast like numpy; their gradients return full-shape arrays and the Session
un-broadcasts them centrally.  Other binary math lives in `ops_binary`, unary math in
`ops_unary` (activations in `ops_activations`), comparisons and logical ops in `ops_compare`;
their names are re-exported here so `tf.*` reaches them.
"""

from __future__ import annotations

import numpy as np

from engine.autodiff import RegisterGradient
from engine.graph import Operation
from engine.ops_activations import (  # _sigmoid, _relu_mask_grad: ops_linalg, scoring use them
    _relu_mask_grad,  # noqa: F401
    _sigmoid,  # noqa: F401
    relu,
    sigmoid,
    softplus,
    tanh,
)
from engine.ops_binary import (
    add_n,
    div,
    floordiv,
    floormod,
    maximum,
    minimum,
    mod,
    pow,  # noqa: A004 - TF-1's name
    squared_difference,
)
from engine.ops_compare import (
    equal,
    greater,
    greater_equal,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    not_equal,
)
from engine.ops_unary import (
    abs,  # noqa: A004 - TF-1's name
    ceil,
    cos,
    exp,
    floor,
    log,
    log1p,
    reciprocal,
    round,  # noqa: A004 - TF-1's name
    rsqrt,
    sign,
    sin,
    sqrt,
    square,
)
from engine.shape_rules import BroadcastShape, SameShape, binary_operands, checked

__all__ = [
    "abs",
    "add",
    "add_n",
    "ceil",
    "cos",
    "div",
    "divide",
    "equal",
    "exp",
    "floor",
    "floordiv",
    "floormod",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "log",
    "log1p",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "maximum",
    "minimum",
    "mod",
    "multiply",
    "negative",
    "not_equal",
    "pow",
    "realdiv",
    "reciprocal",
    "relu",
    "round",
    "rsqrt",
    "sigmoid",
    "sign",
    "sin",
    "softplus",
    "sqrt",
    "square",
    "squared_difference",
    "subtract",
    "tanh",
    "truediv",
]


class Add(BroadcastShape, Operation):
    op_type = "add"

    def forward(self, xp, a, b):
        return a + b


class Subtract(BroadcastShape, Operation):
    op_type = "subtract"

    def forward(self, xp, a, b):
        return a - b


class Multiply(BroadcastShape, Operation):
    op_type = "multiply"

    def forward(self, xp, a, b):
        return a * b


class Divide(BroadcastShape, Operation):
    op_type = "divide"

    def forward(self, xp, a, b):
        return a / b

    def infer_dtype(self, a, b):
        # True division: integers give floats (int8/16 -> float32, wider -> float64), as TF.
        dtype = Operation.infer_dtype(self, a, b)
        if dtype is None or dtype.kind not in "iub":
            return dtype
        return np.dtype(np.float32 if dtype.itemsize <= 2 else np.float64)


class Negative(SameShape, Operation):
    op_type = "negative"

    def forward(self, xp, a):
        return -a


def add(x, y, name=None):
    """x + y (broadcasting)."""
    return checked(Add(binary_operands(x, y), name=name))


def subtract(x, y, name=None):
    """x - y (broadcasting)."""
    return checked(Subtract(binary_operands(x, y), name=name))


def multiply(x, y, name=None):
    """x * y element-wise (broadcasting)."""
    return checked(Multiply(binary_operands(x, y), name=name))


def divide(x, y, name=None):
    """x / y element-wise (broadcasting; integers give floats, as TF's truediv)."""
    return checked(Divide(binary_operands(x, y), name=name))


def truediv(x, y, name=None):
    """x / y, integers converted to floats first (TF-1's `truediv`)."""
    return checked(Divide(binary_operands(x, y), name=name or "truediv"))


def realdiv(x, y, name=None):
    """x / y for real (float) tensors (TF-1's `realdiv`)."""
    return checked(Divide(binary_operands(x, y), name=name or "realdiv"))


def negative(x, name=None):
    """-x."""
    return Negative([x], name=name)


@RegisterGradient("add")
def _add_grad(op, g):
    return g, g


@RegisterGradient("subtract")
def _subtract_grad(op, g):
    return g, -g if op.need[1] else None


@RegisterGradient("multiply")
def _multiply_grad(op, g):
    a, b = op.inputs
    return (g * b if op.need[0] else None), (g * a if op.need[1] else None)


@RegisterGradient("divide")
def _divide_grad(op, g):
    a, b = op.inputs
    ga = g / b
    return ga, (-ga * a / b if op.need[1] else None)


@RegisterGradient("negative")
def _negative_grad(op, g):
    return (-g,)
