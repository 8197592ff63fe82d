"""Reverse-mode autodiff: the gradient registry and fetchable gradient nodes.

A gradient function has the seed's signature `fn(op, grad)`: `op` is a per-run `OpView`
exposing `.inputs` and `.output` (this run's values), `.aux` (what a built-in op's forward
kept for it), `.xp` (numpy or cupy), `.need` (which inputs want a gradient) and, through
attribute fallback, the op's own attributes.  It returns one gradient per input (a single
value is accepted for one-input ops; None for "no gradient").  Gradients whose shape differs
from their input's are un-broadcast centrally (`unbroadcast`), never in the functions.

`gradients(ys, xs)` returns `GradientTensor` meta nodes, fetchable with `Session.run`; the
Session computes all of one request's gradients in one backward pass over this run's
values, in reverse topological order restricted to the nodes between xs and ys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.errors import GraphError, NoGradientError
from engine.graph import Node, Operation, Variable, topological_order

__all__ = [
    "GradientRequest",
    "GradientTensor",
    "NotDifferentiable",
    "OpView",
    "RegisterGradient",
    "compute_gradients",
    "get_gradient_function",
    "gradients",
    "sum_rows",
    "unbroadcast",
]

_REGISTRY: dict[str, Callable | None] = {}


class RegisterGradient:
    """Decorator: `@RegisterGradient("sigmoid") def f(op, grad): ...` (op type or op class)."""

    def __init__(self, op_type) -> None:
        self.op_type = op_type if isinstance(op_type, str) else op_type.op_type

    def __call__(self, fn: Callable) -> Callable:
        _REGISTRY[self.op_type] = fn
        return fn


def NotDifferentiable(op_type: str) -> None:  # noqa: N802 - TF-1's name
    """Declare that ops of `op_type` pass no gradient to any input."""
    _REGISTRY[op_type] = None


def get_gradient_function(op: Operation) -> Callable | None:
    """The gradient function for `op`; NoGradientError naming the op when none is registered."""
    try:
        return _REGISTRY[op.op_type]
    except KeyError:
        raise NoGradientError(
            f"no gradient registered for op {op.name!r} of type {op.op_type!r}; register one with "
            f'@RegisterGradient("{op.op_type}") or keep the op off the path to the loss'
        ) from None


class OpView:
    """What a gradient function sees of an op during one run (values never live on nodes)."""

    __slots__ = ("aux", "inputs", "need", "op", "output", "xp")

    def __init__(self, op, xp, inputs, output, aux, need) -> None:
        self.op = op
        self.xp = xp
        self.inputs = inputs
        self.output = output
        self.aux = aux
        self.need = need

    def __getattr__(self, name: str):
        return getattr(self.op, name)


def sum_rows(xp, grad):
    """grad.sum(axis=0) for a 2-D array; as ones @ grad for floats (BLAS: ~10x faster)."""
    if grad.dtype.kind == "f":
        return xp.ones(grad.shape[0], dtype=grad.dtype) @ grad
    return grad.sum(axis=0)


def unbroadcast(xp, grad, shape: tuple[int, ...]):
    """Sum `grad` over the axes broadcasting added or stretched, giving an array of `shape`."""
    extra = grad.ndim - len(shape)
    if extra == 1 and grad.ndim == 2:
        grad = sum_rows(xp, grad)
    elif extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape) if grad.shape != tuple(shape) else grad


class GradientRequest:
    """d(sum of ys)/d(xs): the nodes between them and the backward order, fixed at build time."""

    def __init__(self, ys: Sequence[Node], xs: Sequence[Node], grad_ys=None, stop=()) -> None:
        self.ys = list(ys)
        self.xs = list(xs)
        self.grad_ys = None if grad_ys is None else list(grad_ys)
        self.graph = self.ys[0].graph
        topo = topological_order(self.ys + (self.grad_ys or []))
        reach = {id(x) for x in self.xs}
        stopped = {id(n) for n in stop} - reach  # held constant: nothing flows through them
        for node in topo:
            if (
                id(node) not in reach
                and id(node) not in stopped
                and any(id(i) in reach for i in node.input_nodes)
            ):
                reach.add(id(node))
        self.reach = reach
        # Reverse topological order over ops between xs and ys: every consumer's contribution
        # is summed into a node before that node's own gradient is propagated.
        self.backward_ops = [n for n in reversed(topo) if id(n) in reach and n.input_nodes]
        for op in self.backward_ops:
            if not isinstance(op, Operation):
                raise GraphError(f"cannot differentiate through {op.name!r} ({op.op_type})")
            get_gradient_function(op)
        self.connected = [
            any(id(y) in reach for y in self.ys) and id(x) in {id(n) for n in topo} for x in self.xs
        ]


def _reaches(topo, x, ys, stopped) -> bool:
    """Whether some path from x to a y avoids the stopped nodes."""
    reach = {id(x)}
    for node in topo:
        if id(node) not in stopped and any(id(i) in reach for i in node.input_nodes):
            reach.add(id(node))
    return any(id(y) in reach for y in ys)


class GradientTensor(Node):
    """Meta node: the gradient of a request's ys w.r.t. its `index`-th x (fetchable)."""

    op_type = "gradient"

    def __init__(self, request: GradientRequest, index: int) -> None:
        x = request.xs[index]
        super().__init__(f"gradients/{x.name}", request.graph)
        self.request = request
        self.index = index
        self.input_nodes = list(request.ys) + list(request.grad_ys or [])
        self.graph.meta_nodes.append(self)

    def _static_shape(self):
        return self.request.xs[self.index].shape

    @property
    def dtype(self):
        return self.request.xs[self.index].dtype


def _as_list(nodes) -> list:
    return list(nodes) if isinstance(nodes, (list, tuple)) else [nodes]


def gradients(
    ys,
    xs,
    grad_ys=None,
    name="gradients",
    colocate_gradients_with_ops=False,
    gate_gradients=False,
    aggregation_method=None,
    stop_gradients=None,
    unconnected_gradients="none",
) -> list:
    """d(sum(ys))/d(x) for each x in xs, as fetchable nodes (TF-1's signature).

    Where x does not affect ys the entry is None, or zeros with `unconnected_gradients="zero"`;
    `stop_gradients` are held constant.  A gather/embedding_lookup table's gradient is fetched
    as `IndexedSlices`.  `name`, colocation, gating and aggregation are accepted and ignored.
    """
    ys_list, xs_list = _as_list(ys), _as_list(xs)
    for node in ys_list + xs_list:
        if not isinstance(node, Node):
            raise GraphError(f"gradients(): expected graph nodes, got {type(node).__name__}")
    if grad_ys is not None and len(_as_list(grad_ys)) != len(ys_list):
        raise GraphError("gradients(): grad_ys must have one entry per y")
    unconnected = getattr(unconnected_gradients, "value", unconnected_gradients)
    if unconnected not in ("none", "zero"):
        raise ValueError(
            f"gradients(): unconnected_gradients must be 'none' or 'zero', got {unconnected!r}"
        )
    stop = [] if stop_gradients is None else _as_list(stop_gradients)
    request = GradientRequest(
        ys_list, xs_list, None if grad_ys is None else _as_list(grad_ys), stop=stop
    )
    out = []
    for i, connected in enumerate(request.connected):
        if connected:
            out.append(GradientTensor(request, i))
        elif unconnected == "zero":
            from engine.creation import zeros_like

            out.append(zeros_like(xs_list[i]))
        else:
            out.append(None)
    return out


def compute_gradients(loss: Node, var_list=None) -> list[tuple[GradientTensor | None, Variable]]:
    """(gradient node, variable) pairs of `loss` for `var_list` (default: trainable variables)."""
    if var_list is None:
        var_list = [v for v in loss.graph.variables if v.trainable]
    var_list = list(var_list)
    if not var_list:
        raise GraphError(f"compute_gradients({loss.name!r}): there are no variables to train")
    return list(zip(gradients(loss, var_list), var_list, strict=True))
