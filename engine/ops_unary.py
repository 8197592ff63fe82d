"""Unary element-wise math (TF-1 names), with their gradients.

Re-exported by `ops_math`, whose `__all__` reaches `tf.*`.
"""

from __future__ import annotations

from engine.autodiff import NotDifferentiable, RegisterGradient
from engine.graph import Operation
from engine.shape_rules import SameShape

__all__ = [
    "abs",
    "ceil",
    "cos",
    "exp",
    "floor",
    "log",
    "log1p",
    "reciprocal",
    "round",
    "rsqrt",
    "sign",
    "sin",
    "sqrt",
    "square",
]


class Exp(SameShape, Operation):
    op_type = "exp"

    def forward(self, xp, x):
        return xp.exp(x)


class Log(SameShape, Operation):
    op_type = "log"

    def forward(self, xp, x):
        return xp.log(x)


class Square(SameShape, Operation):
    op_type = "square"

    def forward(self, xp, x):
        return xp.square(x)


class Sqrt(SameShape, Operation):
    op_type = "sqrt"

    def forward(self, xp, x):
        return xp.sqrt(x)


class Abs(SameShape, Operation):
    op_type = "abs"

    def forward(self, xp, x):
        return xp.abs(x)


class Sin(SameShape, Operation):
    op_type = "sin"

    def forward(self, xp, x):
        return xp.sin(x)


class Cos(SameShape, Operation):
    op_type = "cos"

    def forward(self, xp, x):
        return xp.cos(x)


class Log1p(SameShape, Operation):
    op_type = "log1p"

    def forward(self, xp, x):
        return xp.log1p(x)


class Rsqrt(SameShape, Operation):
    op_type = "rsqrt"

    def forward(self, xp, x):
        return 1 / xp.sqrt(x)


class Reciprocal(SameShape, Operation):
    op_type = "reciprocal"

    def forward(self, xp, x):
        return 1 / xp.asarray(x)


class Sign(SameShape, Operation):
    op_type = "sign"

    def forward(self, xp, x):
        return xp.sign(x)


class Floor(SameShape, Operation):
    op_type = "floor"

    def forward(self, xp, x):
        return xp.floor(x)


class Ceil(SameShape, Operation):
    op_type = "ceil"

    def forward(self, xp, x):
        return xp.ceil(x)


class Round(SameShape, Operation):
    op_type = "round"

    def forward(self, xp, x):
        return xp.round(x)  # half to even, as TF's round


def exp(x, name=None):
    """e ** x."""
    return Exp([x], name=name)


def log(x, name=None):
    """Natural logarithm."""
    return Log([x], name=name)


def square(x, name=None):
    """x ** 2."""
    return Square([x], name=name)


def sqrt(x, name=None):
    """Square root."""
    return Sqrt([x], name=name)


def abs(x, name=None):  # noqa: A001 - TF-1's name
    """|x|; the gradient is sign(x) (0 at 0, as TF)."""
    return Abs([x], name=name)


def sin(x, name=None):
    """Sine."""
    return Sin([x], name=name)


def cos(x, name=None):
    """Cosine."""
    return Cos([x], name=name)


def log1p(x, name=None):
    """log(1 + x), accurate for small x."""
    return Log1p([x], name=name)


def rsqrt(x, name=None):
    """1 / sqrt(x)."""
    return Rsqrt([x], name=name)


def reciprocal(x, name=None):
    """1 / x."""
    return Reciprocal([x], name=name)


def sign(x, name=None):
    """-1, 0 or 1 by the sign of x; its gradient is zero (as TF)."""
    return Sign([x], name=name)


def floor(x, name=None):
    """The largest integer not greater than x; not differentiable (as TF)."""
    return Floor([x], name=name)


def ceil(x, name=None):
    """The smallest integer not less than x; not differentiable (as TF)."""
    return Ceil([x], name=name)


def round(x, name=None):  # noqa: A001 - TF-1's name
    """x rounded to the nearest integer, halves to even (as TF); not differentiable."""
    return Round([x], name=name)


@RegisterGradient("exp")
def _exp_grad(op, g):
    return (g * op.output,)


@RegisterGradient("log")
def _log_grad(op, g):
    return (g / op.inputs[0],)


@RegisterGradient("square")
def _square_grad(op, g):
    return (g * (2 * op.inputs[0]),)


@RegisterGradient("sqrt")
def _sqrt_grad(op, g):
    return (g * 0.5 / op.output,)


@RegisterGradient("abs")
def _abs_grad(op, g):
    return (g * op.xp.sign(op.inputs[0]),)


@RegisterGradient("sin")
def _sin_grad(op, g):
    return (g * op.xp.cos(op.inputs[0]),)


@RegisterGradient("cos")
def _cos_grad(op, g):
    return (-g * op.xp.sin(op.inputs[0]),)


@RegisterGradient("log1p")
def _log1p_grad(op, g):
    return (g / (1 + op.inputs[0]),)


@RegisterGradient("rsqrt")
def _rsqrt_grad(op, g):
    y = op.output
    return (g * (-0.5 * y * y * y),)


@RegisterGradient("reciprocal")
def _reciprocal_grad(op, g):
    y = op.output
    return (-g * y * y,)


@RegisterGradient("sign")
def _sign_grad(op, g):
    return (op.xp.zeros_like(g),)


NotDifferentiable("floor")
NotDifferentiable("ceil")
NotDifferentiable("round")
