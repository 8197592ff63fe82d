"""Grappler-style remapping for compiled plans: matmul + bias + activation as one step.

TF-1's Grappler rewrites MatMul -> BiasAdd (-> Relu) into one `_FusedMatMul` kernel on its
own; the engine does the same when a Session compiles a plan, so code written with
`tf.matmul(x, W) + b` and `tf.nn.relu` runs like `fused_dense`.  A chain

    matmul(x, W) -> add(., b) or bias_add(., b) -> relu / sigmoid / tanh (or none)

runs as ONE forward step (`fused_dense`'s kernel: one GEMM, the bias added in place, the
activation in place) and ONE backward entry giving the gradients of x, W and b at once.  The
graph is never changed: a chain fuses only in a plan where its intermediate nodes feed
nothing but the next link of the chain, are neither fetched nor fed, are no gradient's `xs`,
`ys` or `grad_ys`, have no control edges, and sit on the same side of the plan's updates.

Numerics are those of the unfused plan: the same GEMM, the same additions, the same
activation and gradient formulas.  When a run's values do not fit the fast kernel (not 2-D,
a bias that is not 1-D, mixed dtypes) the step computes the three ops one by one instead.

Switch off with the environment variable PEPPERCORN_FUSION=0 (read when a plan compiles) or
per session with `session.fuse_dense_chains = False` (the oracle for tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.autodiff import OpView, get_gradient_function, unbroadcast
from engine.graph import Node, Operation
from engine.ops_linalg import FusedDense

# fused_dense's kernel and gradient, applied to a chain (both read only its `activation`).
_FUSED_FORWARD = FusedDense.forward
_FUSED_GRADIENT = get_gradient_function(FusedDense.__new__(FusedDense))

__all__ = [
    "FUSABLE_ACTIVATIONS",
    "DenseChain",
    "DenseChains",
    "find_dense_chains",
    "fusion_enabled",
]

FUSABLE_ACTIVATIONS = ("relu", "sigmoid", "tanh")
_ENV = "PEPPERCORN_FUSION"


def fusion_enabled(session) -> bool:
    """Whether plans of `session` fuse dense chains: its `fuse_dense_chains` attribute when
    set, else $PEPPERCORN_FUSION (default on; "0", "false", "off" or "no" switch it off)."""
    chosen = getattr(session, "fuse_dense_chains", None)
    if chosen is not None:
        return bool(chosen)
    return os.environ.get(_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


@dataclass
class DenseChain:
    """One fused matmul -> bias -> activation chain of a plan."""

    matmul: Operation
    bias_op: Operation
    activation_op: Operation | None
    bias: Node
    bias_first: bool  # add(b, matmul) rather than add(matmul, b): kept for the slow path

    @property
    def output(self) -> Operation:
        """The chain's last node: the one whose value the plan keeps."""
        return self.activation_op if self.activation_op is not None else self.bias_op

    def __post_init__(self) -> None:
        # An attribute, not a property: fused_dense's forward and gradient read it every run.
        self.activation = "linear" if self.activation_op is None else self.activation_op.op_type

    @property
    def inputs(self) -> tuple[Node, Node, Node]:
        """(x, W, b): what the fused step reads."""
        x, w = self.matmul.input_nodes
        return x, w, self.bias

    def forward_step(self, xp, slots: dict[int, int], aux: int):
        """A plan step computing the chain's output into its slot.

        The fast path is `fused_dense`'s own forward (one GEMM, bias and activation in place
        on its result).  `aux` is the output op's aux slot (unused by these ops): the slow
        path leaves the intermediate values there for the backward entry; the fast path
        leaves it None, as the plan's template has it.
        """
        ix, iw, ib = (slots[id(node)] for node in self.inputs)
        out = slots[id(self.output)]
        slow = self._slow_forward(xp)
        chain = self

        def step(v):
            x, w, b = v[ix], v[iw], v[ib]
            if (
                x.ndim == 2
                and w.ndim == 2
                and getattr(b, "ndim", 0) == 1
                and x.dtype == w.dtype == b.dtype
                and b.shape[0] == w.shape[1]
            ):
                v[out] = _FUSED_FORWARD(chain, xp, x, w, b)
            else:
                v[out], v[aux] = slow(x, w, b)

        return step

    def _slow_forward(self, xp):
        matmul = self.matmul.kernel(xp, None)
        add = self.bias_op.kernel(xp, None)
        act = None if self.activation_op is None else self.activation_op.kernel(xp, None)
        bias_first = self.bias_first

        def slow(x, w, b):
            m = matmul(x, w)
            a = add(b, m) if bias_first else add(m, b)
            return (a if act is None else act(a)), (m, a)

        return slow

    def backward_entry(self, slots: dict[int, int], reach: set[int], aux: int):
        """An entry for `plan_steps.backward_step`: (op, fn, out, ins, need, aux)."""
        ins = tuple(slots[id(node)] for node in self.inputs)
        need = tuple(id(node) in reach for node in self.inputs)
        return (self.output, self._gradient(), slots[id(self.output)], ins, need, aux)

    def _gradient(self):
        act_op, matmul_op = self.activation_op, self.matmul
        act_grad = None if act_op is None else get_gradient_function(act_op)
        matmul_grad = get_gradient_function(matmul_op)
        chain = self

        def gradient(op: OpView, g):
            """(dx, dW, db) of the chain from the gradient of its output."""
            xp = op.xp
            kept = op.aux  # None: the fast forward ran; else (matmul value, pre-activation)
            if kept is None:  # fused_dense's own gradient; it reads the chain's activation
                return _FUSED_GRADIENT(OpView(chain, xp, op.inputs, op.output, None, op.need), g)
            x, w, _ = op.inputs
            m, pre = kept
            if act_grad is not None:
                view = OpView(act_op, xp, [pre], op.output, None, (True,))
                (g,) = _as_tuple(act_grad(view, g))
            need_x, need_w, need_b = op.need
            # As for an unfused add: b's gradient is g, un-broadcast to b's shape by the
            # backward pass; x @ W's is g un-broadcast to its own shape.
            gb = g if need_b else None
            if g.shape != m.shape:
                g = unbroadcast(xp, g, m.shape)
            gx = gw = None
            if need_x or need_w:
                view = OpView(matmul_op, xp, [x, w], m, None, (need_x, need_w))
                gx, gw = _as_tuple(matmul_grad(view, g))
            return gx, gw, gb

        return gradient


def _as_tuple(result):
    if type(result) is tuple:
        return result
    return tuple(result) if isinstance(result, list) else (result,)


@dataclass
class DenseChains:
    """The chains of one plan: by id of their output node, and the ids they absorb."""

    by_output: dict[int, DenseChain] = field(default_factory=dict)
    absorbed: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.by_output)


NO_CHAINS = DenseChains()


def _builtin(node: Node, op_type: str) -> bool:
    return (
        isinstance(node, Operation)
        and node.op_type == op_type
        and type(node).__module__.startswith("engine.")
    )


def find_dense_chains(order: list[Node], fetched, fed) -> DenseChains:
    """The fusable chains among `order` (a plan's nodes), given its fetched and fed nodes."""
    uses: dict[int, int] = {}
    pinned = {id(node) for node in fetched} | {id(node) for node in fed}
    first_late = len(order)
    for i, node in enumerate(order):
        if node in fed:  # a leaf of this plan: its inputs are not computed
            continue
        for parent in node.input_nodes:
            uses[id(parent)] = uses.get(id(parent), 0) + 1
        for parent in getattr(node, "control_inputs", ()):
            pinned.add(id(parent))
        if getattr(node, "control_inputs", None):
            pinned.add(id(node))
        request = getattr(node, "request", None)
        if node.op_type == "gradient" and request is not None:
            pinned.update(id(x) for x in request.xs)
            pinned.update(id(y) for y in request.ys)
            pinned.update(id(y) for y in request.grad_ys or ())
        if first_late == len(order) and _is_update(node):
            first_late = i
    position = {id(node): i for i, node in enumerate(order)}

    def inner(node: Node) -> bool:  # an intermediate: fed only into the next link
        return id(node) not in pinned and uses.get(id(node)) == 1

    chains = DenseChains()
    for node in order:
        if id(node) in pinned and node in fed:
            continue
        activation_op, bias_op = None, node
        if any(_builtin(node, a) for a in FUSABLE_ACTIVATIONS) and len(node.input_nodes) == 1:
            activation_op, bias_op = node, node.input_nodes[0]
            if not inner(bias_op):
                activation_op, bias_op = None, node
        chain = _chain_at(bias_op, activation_op, inner)
        if chain is None or id(chain.output) in chains.absorbed:
            continue
        members = (chain.matmul, chain.bias_op, chain.output)
        if any(id(m) not in position for m in members):
            continue
        sides = {position[id(m)] < first_late for m in members}
        if len(sides) != 1:
            continue
        if id(chain.bias_op) in chains.by_output:  # an activation claims its linear chain
            del chains.by_output[id(chain.bias_op)]
        chains.by_output[id(chain.output)] = chain
        chains.absorbed.update({id(chain.matmul), id(chain.bias_op)} - {id(chain.output)})
    return chains


def _is_update(node: Node) -> bool:
    from engine.plan import UpdateNode

    return isinstance(node, UpdateNode)


def _chain_at(bias_op: Node, activation_op, inner) -> DenseChain | None:
    """The chain ending in `bias_op` (then `activation_op`), or None."""
    if _builtin(bias_op, "bias_add"):
        if bias_op.attrs.get("data_format") not in (None, "NHWC"):
            return None
        candidates = [(bias_op.input_nodes[0], bias_op.input_nodes[1], False)]
    elif _builtin(bias_op, "add"):
        a, b = bias_op.input_nodes
        candidates = [(a, b, False), (b, a, True)]
    else:
        return None
    for matmul, bias, bias_first in candidates:
        if not _builtin(matmul, "matmul") or not inner(matmul):
            continue
        if any(matmul.attrs.get(k) for k in ("transpose_a", "transpose_b", "adjoint_a")):
            continue
        if any(matmul.attrs.get(k) for k in ("adjoint_b", "a_is_sparse", "b_is_sparse")):
            continue
        if not _may_fit(matmul, bias):
            continue
        return DenseChain(matmul, bias_op, activation_op, bias, bias_first)
    return None


def _rank(node: Node) -> int | None:
    shape = getattr(node, "shape", None)
    if shape is None:
        return None
    rank = getattr(shape, "rank", None)
    return rank if rank is not None or hasattr(shape, "rank") else len(shape)


def _may_fit(matmul: Operation, bias: Node) -> bool:
    """False when static shapes or dtypes already rule the fast kernel out."""
    x, w = matmul.input_nodes
    ranks = [_rank(x), _rank(w), _rank(bias)]
    if any(r is not None and r != want for r, want in zip(ranks, (2, 2, 1), strict=True)):
        return False
    dtypes = {getattr(node, "dtype", None) for node in (x, w, bias)}
    dtypes.discard(None)
    return len(dtypes) <= 1
