"""Graph optimisation passes for inference and export.

Every pass reads a graph and the nodes to keep computing ("outputs") and builds a NEW graph
holding only what those outputs need; the input graph is never changed.  It returns an
`OptimizedGraph`: the new graph plus the map from each old output's name to the node that
computes it in the new graph.  A folded constant, a fused op or a merged duplicate keeps the
name of the node it replaces, so outputs can also be found again by name.

Passes: `prune` (only what the outputs need; variables kept or frozen into constants),
`fold_constants`, `eliminate_common_subexpressions`, `fuse_dense` (matmul + bias +
activation into one `fused_dense` op).  `optimize_for_inference` runs them in that order.
Random or stateful ops (dropout, any op whose kernel takes the session's random generator,
or a class marked `stateful = True`) are never folded, merged or fused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from engine.errors import GraphError
from engine.graph import Constant, Graph, Node, Operation, Placeholder, Variable
from engine.graph import topological_order as _topological_order

__all__ = [
    "OptimizedGraph",
    "eliminate_common_subexpressions",
    "fold_constants",
    "fuse_dense",
    "is_stateful",
    "optimize_for_inference",
    "prune",
]

# Op types whose results depend on more than their inputs, whatever their class says.
_RANDOM_OP_WORDS = ("random", "dropout", "shuffle", "sample")
_FUSABLE_ACTIVATIONS = ("relu", "sigmoid", "tanh")


@dataclass
class OptimizedGraph:
    """A pass's result: the new graph, old output name -> new node, and per-pass node counts."""

    graph: Graph
    outputs: dict[str, Node]
    stats: list[dict] = field(default_factory=list)

    def output_list(self, names: Iterable[str]) -> list[Node]:
        """The new nodes for the old outputs called `names`, in order."""
        return [self.outputs[n] for n in names]

    @property
    def node_count(self) -> int:
        """Nodes in the new graph (all of them are needed by the outputs)."""
        return _node_count(self.graph)


def _node_count(graph: Graph) -> int:
    """Forward nodes of `graph` (gradient and training meta nodes are not counted)."""
    return (
        len(graph.operations)
        + len(graph.placeholders)
        + len(graph.variables)
        + len(graph.constants)
    )


def is_stateful(node: Node) -> bool:
    """True for ops that must run every time: random, side-effecting, or explicitly marked."""
    if not isinstance(node, Operation):
        return False
    if getattr(type(node), "stateful", False):
        return True
    if type(node).kernel is not Operation.kernel:  # takes the session's random generator
        return True
    return any(word in node.op_type.lower() for word in _RANDOM_OP_WORDS)


# A rewrite plan maps id(old node) to one of these; nodes without a plan are copied.
@dataclass(frozen=True)
class _AsOp:
    op_type: str
    inputs: tuple  # old nodes
    attrs: dict
    name: str


@dataclass(frozen=True)
class _AsConstant:
    value: object
    name: str


@dataclass(frozen=True)
class _AliasOf:
    node: Node


def _resolve_outputs(graph: Graph, outputs) -> list[Node]:
    if isinstance(outputs, (Node, str)):
        outputs = [outputs]
    nodes = []
    for out in outputs:
        node = graph.get_node(out) if isinstance(out, str) else out
        if not isinstance(node, Node) or node.graph is not graph:
            raise GraphError(f"output {out!r} is not a node of the graph being optimised")
        if node in graph.meta_nodes:
            raise GraphError(
                f"output {node.name!r} is a gradient/training node; passes keep "
                "forward computations only"
            )
        nodes.append(node)
    if not nodes:
        raise GraphError("optimisation needs at least one output node")
    return nodes


def _copy_leaf(node: Node, value_of: Callable[[Variable], np.ndarray], freeze: bool) -> Node:
    if isinstance(node, Placeholder):
        return Placeholder(node.dtype, node.shape, name=node.name)
    if isinstance(node, Variable):
        value = np.array(value_of(node), dtype=node.dtype)
        if freeze:
            return Constant(value, name=node.name)
        return Variable(value, name=node.name, trainable=node.trainable)
    if isinstance(node, Constant):
        return Constant(node.value, name=node.name)
    raise GraphError(f"cannot copy node {node.name!r} ({node.op_type}): neither an op nor a leaf")


def _build(
    graph: Graph,
    outputs: list[Node],
    plan: dict[int, object],
    pass_name: str,
    value_of: Callable[[Variable], np.ndarray] | None = None,
    freeze: bool = False,
) -> OptimizedGraph:
    """A new graph computing `outputs` with `plan`'s rewrites; only reachable nodes are built."""

    def resolve(node: Node) -> Node:
        step = plan.get(id(node))
        while isinstance(step, _AliasOf):
            node = step.node
            step = plan.get(id(node))
        return node

    def inputs_of(node: Node) -> list[Node]:
        step = plan.get(id(node))
        if isinstance(step, _AsConstant):
            return []
        return [resolve(i) for i in (step.inputs if isinstance(step, _AsOp) else node.input_nodes)]

    # Iterative post-order over the rewritten wiring: inputs are built before consumers.
    order: list[Node] = []
    done: set[int] = set()
    for root in map(resolve, outputs):
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if id(node) not in done:
                    done.add(id(node))
                    order.append(node)
                continue
            if id(node) in done:
                continue
            stack.append((node, True))
            stack.extend((i, False) for i in reversed(inputs_of(node)) if id(i) not in done)

    value_of = value_of or (lambda v: v.initial_value)
    built: dict[int, Node] = {}
    new_graph = Graph()
    new_graph.seed = graph.seed
    with new_graph.as_default():
        for node in order:
            step = plan.get(id(node))
            inputs = [built[id(i)] for i in inputs_of(node)]
            if isinstance(step, _AsConstant):
                new = Constant(step.value, name=step.name)
            elif isinstance(step, _AsOp):
                new = Operation.from_attrs(step.op_type, inputs, step.attrs, name=step.name)
            elif isinstance(node, Operation):
                new = Operation.from_attrs(node.op_type, inputs, node.attrs, name=node.name)
            else:
                new = _copy_leaf(node, value_of, freeze)
            built[id(node)] = new
    result = OptimizedGraph(new_graph, {o.name: built[id(resolve(o))] for o in outputs})
    result.stats.append(
        {"pass": pass_name, "nodes_before": _node_count(graph), "nodes_after": len(order)}
    )
    return result


def _source(source) -> tuple[Graph, Callable[[Variable], np.ndarray] | None]:
    """(graph, variable value reader) for a Graph (initial values) or a Session (current ones)."""
    if isinstance(source, Graph):
        return source, None
    graph = getattr(source, "graph", None)
    if not isinstance(graph, Graph):
        raise GraphError(f"expected a Graph or a Session, got {type(source).__name__}")
    from engine.backend import to_numpy

    return graph, lambda var: np.asarray(to_numpy(source.get_value(var)))


def prune(source, outputs, *, freeze: bool = False) -> OptimizedGraph:
    """Keep only what `outputs` need.

    `source` is a Graph (variables keep their initial values) or a Session (variables take its
    current values); `freeze=True` turns variables into constants.
    """
    graph, value_of = _source(source)
    return _build(graph, _resolve_outputs(graph, outputs), {}, "prune", value_of, freeze)


def fold_constants(graph: Graph, outputs) -> OptimizedGraph:
    """Replace each deterministic op whose inputs are all constants by a constant of its value."""
    nodes = _resolve_outputs(graph, outputs)
    values: dict[int, object] = {}
    plan: dict[int, object] = {}
    for node in _topological_order(nodes):
        if isinstance(node, Constant):
            values[id(node)] = node.value
            continue
        if not isinstance(node, Operation) or not node.input_nodes or is_stateful(node):
            continue
        if not all(id(i) in values for i in node.input_nodes):
            continue
        try:
            value = node.compute(*[values[id(i)] for i in node.input_nodes])
        except Exception as exc:
            raise GraphError(
                f"constant folding: op {node.name!r} ({node.op_type}) fails on its "
                f"constant inputs: {exc}"
            ) from exc
        # Python scalars stay weakly typed (as the op would have produced them at run time).
        if not isinstance(value, (bool, int, float)) or isinstance(value, np.generic):
            value = np.asarray(value)
        values[id(node)] = value
        plan[id(node)] = _AsConstant(value, node.name)
    return _build(graph, nodes, plan, "fold_constants")


def _constant_key(node: Constant) -> tuple:
    value = node.value
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    return ("scalar", type(value).__name__, repr(value))


def eliminate_common_subexpressions(graph: Graph, outputs) -> OptimizedGraph:
    """Merge equal constants, and ops of one type with equal attrs and (merged) inputs."""
    nodes = _resolve_outputs(graph, outputs)
    plan: dict[int, object] = {}
    first: dict[tuple, Node] = {}

    def canonical(node: Node) -> Node:
        step = plan.get(id(node))
        return step.node if isinstance(step, _AliasOf) else node

    for node in _topological_order(nodes):
        if isinstance(node, Constant):
            key = _constant_key(node)
        elif isinstance(node, Operation) and not is_stateful(node):
            attrs = json.dumps(node.attrs, sort_keys=True, default=repr)
            key = ("op", node.op_type, tuple(id(canonical(i)) for i in node.input_nodes), attrs)
        else:
            continue
        if key in first:
            plan[id(node)] = _AliasOf(first[key])
        else:
            first[key] = node
    return _build(graph, nodes, plan, "eliminate_common_subexpressions")


def _array_leaf(node: Node) -> tuple | None:
    """(shape, dtype) of a variable or an array constant; None for anything else."""
    if isinstance(node, Variable):
        return tuple(node.shape), node.dtype
    if isinstance(node, Constant) and isinstance(node.value, np.ndarray):
        return node.value.shape, node.value.dtype
    return None


def _dense_parts(add: Node, uses: dict[int, int], outputs: set[int]) -> tuple | None:
    """(x, W, b) when `add` is matmul(x, W) + b with a 2-D W and a [units] b, else None."""
    if add.op_type != "add" or is_stateful(add):
        return None
    for matmul, bias in (add.input_nodes, add.input_nodes[::-1]):
        if matmul.op_type != "matmul" or is_stateful(matmul) or id(matmul) in outputs:
            continue
        if uses.get(id(matmul)) != 1:
            continue
        if matmul.attrs.get("transpose_a") or matmul.attrs.get("transpose_b"):
            continue  # fused_dense computes x @ w only
        x, w = matmul.input_nodes
        w_info, b_info = _array_leaf(w), _array_leaf(bias)
        if w_info is None or b_info is None or len(w_info[0]) != 2:
            continue
        # fused_dense adds the bias in place: exact only for a [units] bias of W's dtype.
        if b_info[0] != (w_info[0][1],) or b_info[1] != w_info[1]:
            continue
        return x, w, bias
    return None


def fuse_dense(graph: Graph, outputs) -> OptimizedGraph:
    """Rewrite activation(matmul(x, W) + b), or matmul(x, W) + b, into one `fused_dense` op.

    W must be a 2-D variable/constant, b a [units] variable/constant of W's dtype, and the
    matmul (and the add, when an activation follows) must feed nothing else.
    """
    nodes = _resolve_outputs(graph, outputs)
    order = _topological_order(nodes)
    output_ids = {id(n) for n in nodes}
    uses: dict[int, int] = {}
    for node in order:
        for i in node.input_nodes:
            uses[id(i)] = uses.get(id(i), 0) + 1
    plan: dict[int, object] = {}
    absorbed: set[int] = set()
    # Consumers come after producers: walking backwards, an activation claims its add first.
    for node in reversed(order):
        if id(node) in absorbed or is_stateful(node):
            continue
        activation, add = "linear", node
        if node.op_type in _FUSABLE_ACTIVATIONS and len(node.input_nodes) == 1:
            inner = node.input_nodes[0]
            if uses.get(id(inner)) == 1 and id(inner) not in output_ids:
                activation, add = node.op_type, inner
        parts = _dense_parts(add, uses, output_ids)
        if parts is None:
            continue
        plan[id(node)] = _AsOp("fused_dense", parts, {"activation": activation}, node.name)
        absorbed.update({id(add), id(add.input_nodes[0]), id(add.input_nodes[1])} - {id(parts[2])})
    return _build(graph, nodes, plan, "fuse_dense")


def optimize_for_inference(source, outputs, *, freeze: bool = True) -> OptimizedGraph:
    """prune -> fold_constants -> eliminate_common_subexpressions -> fuse_dense.

    `source` is a Graph or a Session (then its current variable values are used).  With
    `freeze=True` variables become constants (and fold); `freeze=False` keeps them variables,
    for an export that stores weights in .npz.  Returned `outputs` are keyed by the ORIGINAL
    output names.
    """
    graph, _ = _source(source)
    names = [n.name for n in _resolve_outputs(graph, outputs)]
    result = prune(source, outputs, freeze=freeze)
    current = result.output_list(names)
    stats = list(result.stats)
    for step in (fold_constants, eliminate_common_subexpressions, fuse_dense):
        # Track outputs by position: CSE may merge two outputs into one node.
        result = step(result.graph, current)
        current = [result.outputs[node.name] for node in current]
        stats += result.stats
    return OptimizedGraph(result.graph, dict(zip(names, current, strict=True)), stats)
