"""Binary element-wise math beyond + - * / (TF-1 names), with their gradients: pow,
maximum, minimum, squared_difference, floordiv, floormod/mod, div, add_n.

Re-exported by `ops_math`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.shape_rules import BroadcastShape, binary_operands, checked

__all__ = [
    "add_n",
    "div",
    "floordiv",
    "floormod",
    "maximum",
    "minimum",
    "mod",
    "pow",
    "squared_difference",
]


class Div(BroadcastShape, Operation):
    """TF-1's `div`: floor division for integers, true division for floats (Python 2's /)."""

    op_type = "div"

    def forward(self, xp, a, b):
        kind = xp.result_type(a, b).kind
        return xp.floor_divide(a, b) if kind in "iu" else a / b


class Pow(BroadcastShape, Operation):
    op_type = "pow"

    def forward(self, xp, a, b):
        return xp.power(a, b)


class Maximum(BroadcastShape, Operation):
    op_type = "maximum"

    def forward(self, xp, a, b):
        return xp.maximum(a, b)


class Minimum(BroadcastShape, Operation):
    op_type = "minimum"

    def forward(self, xp, a, b):
        return xp.minimum(a, b)


class SquaredDifference(BroadcastShape, Operation):
    op_type = "squared_difference"

    def forward(self, xp, a, b):
        diff = a - b
        return diff * diff


class FloorDiv(BroadcastShape, Operation):
    op_type = "floordiv"

    def forward(self, xp, a, b):
        return xp.floor_divide(a, b)


class FloorMod(BroadcastShape, Operation):
    op_type = "floormod"

    def forward(self, xp, a, b):
        return xp.mod(a, b)  # numpy's mod has the divisor's sign, as TF's FloorMod


class AddN(BroadcastShape, Operation):
    op_type = "add_n"

    def forward(self, xp, *values):
        total = values[0] + values[1] if len(values) > 1 else xp.array(values[0], copy=True)
        for value in values[2:]:
            total += value
        return total


def div(x, y, name=None):
    """TF-1's `div`: x // y for integers, x / y for floats."""
    return checked(Div(binary_operands(x, y), name=name))


def pow(x, y, name=None):  # noqa: A001 - TF-1's name
    """x ** y element-wise (broadcasting)."""
    return checked(Pow(binary_operands(x, y), name=name))


def maximum(x, y, name=None):
    """Element-wise maximum; where x == y the gradient goes to x (as TF)."""
    return checked(Maximum(binary_operands(x, y), name=name))


def minimum(x, y, name=None):
    """Element-wise minimum; where x == y the gradient goes to x (as TF)."""
    return checked(Minimum(binary_operands(x, y), name=name))


def squared_difference(x, y, name=None):
    """(x - y) ** 2 element-wise."""
    return checked(SquaredDifference(binary_operands(x, y), name=name))


def floordiv(x, y, name=None):
    """floor(x / y) element-wise (integer division for integers); not differentiable."""
    return checked(FloorDiv(binary_operands(x, y), name=name))


def floormod(x, y, name=None):
    """x - floor(x / y) * y: the remainder with the divisor's sign."""
    return checked(FloorMod(binary_operands(x, y), name=name))


def mod(x, y, name=None):
    """TF-1's `mod`: the same as `floormod`."""
    return checked(FloorMod(binary_operands(x, y), name=name or "mod"))


def add_n(inputs, name=None):
    """The element-wise sum of a list of tensors of one shape."""
    inputs = list(inputs)
    if not inputs:
        raise ValueError("add_n: inputs must be a non-empty list of tensors")
    return checked(AddN(inputs, name=name))


@RegisterGradient("div")
def _div_grad(op, g):
    # Only floats reach a gradient: there div is true division.
    a, b = op.inputs
    ga = g / b
    return ga, (-ga * a / b if op.need[1] else None)


@RegisterGradient("pow")
def _pow_grad(op, g):
    xp = op.xp
    a, b = op.inputs
    ga = g * b * xp.power(a, b - 1) if op.need[0] else None
    gb = None
    if op.need[1]:
        # d/db a**b = a**b log a, taken as 0 where a <= 0 (as TF: the log is undefined there).
        a_arr = xp.asarray(a)
        positive = a_arr > 0
        safe_log = xp.log(xp.where(positive, a_arr, 1))
        gb = g * xp.where(positive, op.output * safe_log, 0)
    return ga, gb


def _select_grad(op, g, pick_first):
    xp = op.xp
    a, b = op.inputs
    first = xp.asarray(pick_first(xp.asarray(a), xp.asarray(b)))
    zero = xp.zeros((), dtype=xp.asarray(g).dtype)
    ga = xp.where(first, g, zero) if op.need[0] else None
    gb = xp.where(first, zero, g) if op.need[1] else None
    return ga, gb


@RegisterGradient("maximum")
def _maximum_grad(op, g):
    return _select_grad(op, g, lambda a, b: a >= b)


@RegisterGradient("minimum")
def _minimum_grad(op, g):
    return _select_grad(op, g, lambda a, b: a <= b)


@RegisterGradient("squared_difference")
def _squared_difference_grad(op, g):
    a, b = op.inputs
    scaled = g * (2 * (a - b))
    return scaled, (-scaled if op.need[1] else None)


@RegisterGradient("floormod")
def _floormod_grad(op, g):
    a, b = op.inputs
    return g, (-g * op.xp.floor_divide(a, b) if op.need[1] else None)


@RegisterGradient("add_n")
def _add_n_grad(op, g):
    return tuple(g for _ in op.inputs)


NotDifferentiable("floordiv")
