"""Comparisons and logical ops (boolean outputs, not differentiable), TF-1 names.

Re-exported by `ops_math`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import NotDifferentiable
from engine.graph import Operation
from engine.shape_rules import BoolOutput, BroadcastShape, SameShape, binary_operands, checked

__all__ = [
    "equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_not",
    "logical_or",
    "logical_xor",
    "not_equal",
]


class _Compare(BoolOutput, BroadcastShape):
    """Mixin: a binary element-wise op with a boolean result; `ufunc` names the xp function."""

    ufunc = ""

    def forward(self, xp, a, b):
        return getattr(xp, self.ufunc)(a, b)


class Equal(_Compare, Operation):
    op_type = "equal"
    ufunc = "equal"


class NotEqual(_Compare, Operation):
    op_type = "not_equal"
    ufunc = "not_equal"


class Greater(_Compare, Operation):
    op_type = "greater"
    ufunc = "greater"


class GreaterEqual(_Compare, Operation):
    op_type = "greater_equal"
    ufunc = "greater_equal"


class Less(_Compare, Operation):
    op_type = "less"
    ufunc = "less"


class LessEqual(_Compare, Operation):
    op_type = "less_equal"
    ufunc = "less_equal"


class LogicalAnd(_Compare, Operation):
    op_type = "logical_and"
    ufunc = "logical_and"


class LogicalOr(_Compare, Operation):
    op_type = "logical_or"
    ufunc = "logical_or"


class LogicalXor(_Compare, Operation):
    op_type = "logical_xor"
    ufunc = "logical_xor"


class LogicalNot(BoolOutput, SameShape, Operation):
    op_type = "logical_not"

    def forward(self, xp, x):
        return xp.logical_not(x)


def equal(x, y, name=None):
    """x == y element-wise (broadcasting), boolean."""
    return checked(Equal(binary_operands(x, y), name=name))


def not_equal(x, y, name=None):
    """x != y element-wise (broadcasting), boolean."""
    return checked(NotEqual(binary_operands(x, y), name=name))


def greater(x, y, name=None):
    """x > y element-wise (broadcasting), boolean."""
    return checked(Greater(binary_operands(x, y), name=name))


def greater_equal(x, y, name=None):
    """x >= y element-wise (broadcasting), boolean."""
    return checked(GreaterEqual(binary_operands(x, y), name=name))


def less(x, y, name=None):
    """x < y element-wise (broadcasting), boolean."""
    return checked(Less(binary_operands(x, y), name=name))


def less_equal(x, y, name=None):
    """x <= y element-wise (broadcasting), boolean."""
    return checked(LessEqual(binary_operands(x, y), name=name))


def logical_and(x, y, name=None):
    """x AND y element-wise on booleans."""
    return checked(LogicalAnd(binary_operands(x, y), name=name))


def logical_or(x, y, name=None):
    """x OR y element-wise on booleans."""
    return checked(LogicalOr(binary_operands(x, y), name=name))


def logical_xor(x, y, name="LogicalXor"):
    """x XOR y element-wise on booleans."""
    return checked(LogicalXor(binary_operands(x, y), name=name))


def logical_not(x, name=None):
    """NOT x element-wise on booleans."""
    return LogicalNot([x], name=name)


for _op_type in (
    "equal",
    "not_equal",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
):
    NotDifferentiable(_op_type)
