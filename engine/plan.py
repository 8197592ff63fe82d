"""Compiled execution plans: what one `Session.run` of a fetch structure does, step by step.

A `_Plan` is built once per (fetch structure, fed nodes) and graph version: slots for every
node it needs, the feeds to check, the variables to read, and a flat list of step closures
(`plan_steps`).  Nothing a run computes is stored on nodes; each node is computed at most once
per run, and steps that update variables (train ops, assignments, initialisers) and whatever
depends on them run after every other step, so other fetched values are pre-update.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.backend import to_numpy
from engine.errors import FailedPreconditionError, FeedError, GraphError, OpExecutionError
from engine.graph import (
    WEAK_SCALAR_DTYPES,
    Constant,
    Graph,
    Node,
    Operation,
    Placeholder,
    Variable,
    topological_order,
)
from engine.plan_fusion import NO_CHAINS, find_dense_chains, fusion_enabled
from engine.plan_steps import backward_step, op_step
from engine.sparse import IndexedSlices
from engine.sparse_tensor import SparseTensor, SparseTensorValue

__all__ = ["Plan", "UpdateNode", "fetch_key", "uninitialized"]


class UpdateNode(Node):
    """Meta node whose step changes session state (train op, initialiser); runs last."""

    op_type = "update"

    def make_step(self, session, slots: dict[int, int]):
        raise NotImplementedError


def _structure(fetches, flat: list, graph: Graph):
    """Append fetched nodes to `flat`; return a function rebuilding the structure from values.

    Lists, tuples, namedtuples and dicts (OrderedDict and other Mapping types included) come
    back as their own types; a string is a node's name ("x" or "x:0").
    """
    if isinstance(fetches, str):
        fetches = graph.get_tensor_by_name(fetches)
    if isinstance(fetches, SparseTensor):  # comes back as a SparseTensorValue of arrays
        fetches = SparseTensorValue(fetches.indices, fetches.values, fetches.dense_shape)
    if isinstance(fetches, Node):
        i = len(flat)
        flat.append(fetches)
        return lambda values: values[i]
    if isinstance(fetches, (list, tuple)):
        parts = [_structure(f, flat, graph) for f in fetches]
        kind = type(fetches)
        if hasattr(fetches, "_fields"):  # a namedtuple
            return lambda values: kind(*[p(values) for p in parts])
        if kind is not list and kind is not tuple:
            kind = list if isinstance(fetches, list) else tuple
        return lambda values: kind([p(values) for p in parts])
    if isinstance(fetches, Mapping):
        keys = list(fetches)
        parts = [_structure(fetches[k], flat, graph) for k in keys]
        kind = type(fetches) if isinstance(fetches, dict) else dict
        return lambda values: kind((k, p(values)) for k, p in zip(keys, parts, strict=True))
    if fetches is None:
        raise GraphError(
            "fetch is None (gradients() gives None for a variable the loss does not depend on)"
        )
    raise GraphError(f"cannot fetch a {type(fetches).__name__}: fetch graph nodes")


def fetch_key(fetches):
    if isinstance(fetches, SparseTensor):
        return (SparseTensor, fetches.indices, fetches.values, fetches.dense_shape)
    if isinstance(fetches, (Node, str)):
        return fetches
    if isinstance(fetches, (list, tuple)):
        return (type(fetches), tuple(fetch_key(f) for f in fetches))
    if isinstance(fetches, Mapping):
        return (type(fetches), tuple(fetches), tuple(fetch_key(f) for f in fetches.values()))
    return (type(fetches), id(fetches))


def _late_nodes(topo: list) -> set[int]:
    """Ids of update nodes and of every node that depends on one (they run after the rest)."""
    late: set[int] = set()
    for node in topo:
        if isinstance(node, UpdateNode) or any(
            id(p) in late for p in node.input_nodes + node.control_inputs
        ):
            late.add(id(node))
    return late


class Plan:
    """A compiled fetch set: slots, feeds, variables, steps and how to return the values."""

    def __init__(self, session, fetches, fed: frozenset) -> None:
        flat: list[Node] = []
        graph = session.graph
        self.rebuild = _structure(fetches, flat, graph)
        for node in list(flat) + list(fed):
            if not isinstance(node, Node):
                raise FeedError(f"feed_dict key {node!r} is not a graph node")
            if node.graph is not graph:
                raise GraphError(f"node {node.name!r} belongs to another graph than the session's")
        topo = topological_order(flat, leaves=fed)
        # Updates (train ops, assignments, initialisers) and what depends on them run after
        # everything else, so other fetched values are the ones from before the updates.
        late = _late_nodes(topo)
        order = [n for n in topo if id(n) not in late] + [n for n in topo if id(n) in late]
        n = len(order)
        slots = {id(node): i for i, node in enumerate(order)}
        self.size = n
        template: list = [None] * (2 * n)  # slot i: value; slot n + i: aux of op i
        self.feeds, self.variables, self.steps, self.step_nodes = [], [], [], []
        missing = []
        stepped_requests = set()
        xp = session.xp
        # Grappler-style: matmul + bias + activation chains run as one step (plan_fusion).
        chains = find_dense_chains(order, flat, fed) if fusion_enabled(session) else NO_CHAINS
        for i, node in enumerate(order):
            if node in fed:
                self.feeds.append((i, node, *_feed_check(node)))
            elif isinstance(node, Placeholder):
                missing.append(node.name)
            elif isinstance(node, Variable):
                self.variables.append((i, node))
            elif isinstance(node, Constant):
                template[i] = session._device_constant(node)
            elif isinstance(node, Operation):
                if id(node) in chains.absorbed:  # computed inside its chain's fused step
                    continue
                chain = chains.by_output.get(id(node))
                if chain is not None:
                    self._add_step(node, chain.forward_step(xp, slots, n + i))
                    continue
                ins = tuple(slots[id(p)] for p in node.input_nodes)
                fn = _dense_inputs(xp, node, node.kernel(xp, session.rng))
                self._add_step(node, op_step(fn, i, ins, n + i if node.has_aux else None))
            elif isinstance(node, UpdateNode):
                self._add_step(node, node.make_step(session, slots))
            elif node.op_type == "gradient":
                request = node.request
                if id(request) in stepped_requests:
                    continue
                stepped_requests.add(id(request))
                self._add_step(node, backward_step(xp, request, order, slots, fed, chains))
            else:
                raise GraphError(f"cannot run node {node.name!r} of type {type(node).__name__}")
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise FeedError(f"missing feed for placeholder(s) {names}: pass them in feed_dict")
        self.template = template
        self.slots = slots
        self.fetch_slots = [slots[id(f)] for f in flat]
        has_updates = bool(late)
        # A fetched array must alias neither session state (variables change in place), nor the
        # graph (constants), nor the caller's fed arrays: copy those, ops that may return an
        # input unchanged, and everything when updating.
        self.copy = [has_updates or f in fed or _may_alias_input(f) for f in flat]

    def _add_step(self, node, step) -> None:
        self.steps.append(step)
        self.step_nodes.append(node)

    def execute(self, session, feed_dict):
        v = self.template.copy()
        if self.feeds:
            convert = session._convert_feed
            for slot, node, dtype, fixed, rank in self.feeds:
                v[slot] = convert(node, feed_dict[node], dtype, fixed, rank)
        store = session._values
        for slot, var in self.variables:
            value = store.get(var)
            if value is None:
                raise uninitialized(var)
            v[slot] = value
        i = 0
        try:
            for i, step in enumerate(self.steps):  # noqa: B007 - i names the failing node
                step(v)
        except GraphError:
            raise
        except Exception as exc:
            raise _op_error(self.step_nodes[i], v, self.slots, exc) from exc
        out = []
        for slot, copy in zip(self.fetch_slots, self.copy, strict=True):
            out.append(_fetched(v[slot], copy))
        return self.rebuild(out)


# Ops whose output may be a view of an input (a variable's value, which updates change).
_ALIASING_OPS = frozenset(
    {
        "identity",
        "stop_gradient",
        "reshape",
        "transpose",
        "dropout",
        "strided_slice",
        "strided_slice_dynamic",
        "split",
        "expand_dims",
        "squeeze",
        "reverse",
    }
)


def _may_alias_input(node: Node) -> bool:
    if isinstance(node, (Variable, Constant)):
        return True
    if isinstance(node, Operation):
        builtin = type(node).__module__.startswith("engine")
        return node.op_type in _ALIASING_OPS or not builtin
    return False


def uninitialized(var: Variable) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"Attempting to use uninitialized value {var.name!r}: run "
        "tf.global_variables_initializer() (or the variable's initializer) first"
    )


def _dense_inputs(xp, node: Operation, fn):
    """`fn` with IndexedSlices inputs (gradients of embedding tables) made dense, as TF-1 does
    for ops that do not take them (`clip_by_value(g, ...)`, `g * 0.5`)."""
    if getattr(node, "accepts_indexed_slices", False) or not any(
        p.op_type == "gradient" or getattr(p, "produces_indexed_slices", False)
        for p in node.input_nodes
    ):
        return fn

    def dense(*values):
        return fn(*[v.to_dense(xp) if type(v) is IndexedSlices else v for v in values])

    return dense


def _feed_check(node: Node):
    if not isinstance(node, (Placeholder, Variable)):
        # A fed intermediate takes any value (models feed a [1, 1] default's stand-in).
        return None, (), None
    dtype, shape = node.dtype, node.shape
    if shape.rank is None:
        return dtype, (), None
    fixed = tuple((axis, d) for axis, d in enumerate(shape) if d is not None)
    return dtype, fixed, len(shape)


def _shape_of(value):
    return getattr(value, "shape", ())


def _op_error(node, v, slots, exc) -> OpExecutionError:
    shapes = ", ".join(str(_shape_of(v[slots[id(p)]])) for p in node.input_nodes)
    detail = f"{type(exc).__name__}: {exc}"
    return OpExecutionError(
        f"op {node.name!r} ({node.op_type}) failed on input shapes [{shapes}]: {detail}"
    )


def _fetched(value, copy: bool):
    if value is None:
        return None
    # A Python scalar (weak constants and what they make) comes back as TF-1's numpy scalar.
    scalar_dtype = WEAK_SCALAR_DTYPES.get(type(value))
    if scalar_dtype is not None:
        return scalar_dtype(value)
    if type(value) is IndexedSlices:
        return value.to_numpy()
    value = to_numpy(value)
    if isinstance(value, np.ndarray) and (copy or not value.flags.writeable):
        return value.copy()  # never a read-only (e.g. zero-stride broadcast) view
    return value
