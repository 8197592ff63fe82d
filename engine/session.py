"""Session: runs a graph on numpy or CuPy; variables and optimizer state live per session.

Hot path: `Session.run` looks up a cached `_Plan` for (fetch structure, fed nodes) and runs
its flat list of step closures over one per-run list of values indexed by integer slots.
Nothing a run computes is stored on nodes; each node is computed at most once per run, and
steps that update variables (train ops, initialisers) run after every other step, so fetched
values are pre-update.
"""

from __future__ import annotations

import numpy as np

from engine.backend import array_module, make_rng, resolve_device, to_numpy
from engine.errors import FeedError, GraphError, OpExecutionError
from engine.graph import (
    Constant,
    Graph,
    Node,
    Operation,
    Placeholder,
    Variable,
    get_default_graph,
    topological_order,
)
from engine.plan_steps import backward_step, op_step
from engine.sparse import IndexedSlices

__all__ = ["Session", "UpdateNode", "global_variables_initializer"]


class UpdateNode(Node):
    """Meta node whose step changes session state (train op, initialiser); runs last."""

    op_type = "update"

    def make_step(self, session: Session, slots: dict[int, int]):
        raise NotImplementedError


class _InitializeVariables(UpdateNode):
    op_type = "init"

    def __init__(self, graph: Graph) -> None:
        super().__init__("init", graph)
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        def step(v):
            session.initialize_variables()

        return step


def global_variables_initializer() -> UpdateNode:
    """A node that (re)initialises every variable of the default graph when run."""
    return _InitializeVariables(get_default_graph())


def _structure(fetches, flat: list):
    """Append fetched nodes to `flat`; return a function rebuilding the structure from values."""
    if isinstance(fetches, Node):
        i = len(flat)
        flat.append(fetches)
        return lambda values: values[i]
    if isinstance(fetches, (list, tuple)):
        parts = [_structure(f, flat) for f in fetches]
        kind = list if type(fetches) is list else tuple
        return lambda values: kind([p(values) for p in parts])
    if isinstance(fetches, dict):
        keys = list(fetches)
        parts = [_structure(fetches[k], flat) for k in keys]
        return lambda values: {k: p(values) for k, p in zip(keys, parts, strict=True)}
    if fetches is None:
        raise GraphError(
            "fetch is None (gradients() gives None for a variable the loss does not depend on)"
        )
    raise GraphError(f"cannot fetch a {type(fetches).__name__}: fetch graph nodes")


def _fetch_key(fetches):
    if isinstance(fetches, Node):
        return fetches
    if isinstance(fetches, (list, tuple)):
        return (type(fetches), tuple(_fetch_key(f) for f in fetches))
    if isinstance(fetches, dict):
        return (dict, tuple(fetches), tuple(_fetch_key(f) for f in fetches.values()))
    return (type(fetches), id(fetches))


class _Plan:
    """A compiled fetch set: slots, feeds, variables, steps and how to return the values."""

    def __init__(self, session: Session, fetches, fed: frozenset) -> None:
        flat: list[Node] = []
        self.rebuild = _structure(fetches, flat)
        graph = session.graph
        for node in list(flat) + list(fed):
            if not isinstance(node, Node):
                raise FeedError(f"feed_dict key {node!r} is not a graph node")
            if node.graph is not graph:
                raise GraphError(f"node {node.name!r} belongs to another graph than the session's")
        topo = topological_order(flat, leaves=fed)
        order = [n for n in topo if not isinstance(n, UpdateNode)]
        order += [n for n in topo if isinstance(n, UpdateNode)]
        n = len(order)
        slots = {id(node): i for i, node in enumerate(order)}
        self.size = n
        template: list = [None] * (2 * n)  # slot i: value; slot n + i: aux of op i
        self.feeds, self.variables, self.steps, self.step_nodes = [], [], [], []
        missing = []
        stepped_requests = set()
        xp = session.xp
        for i, node in enumerate(order):
            if node in fed:
                self.feeds.append((i, node, *_feed_check(node)))
            elif isinstance(node, Placeholder):
                missing.append(node.name)
            elif isinstance(node, Variable):
                session._ensure_initialized(node)
                self.variables.append((i, node))
            elif isinstance(node, Constant):
                template[i] = session._device_constant(node)
            elif isinstance(node, Operation):
                ins = tuple(slots[id(p)] for p in node.input_nodes)
                fn = node.kernel(xp, session.rng)
                self._add_step(node, op_step(fn, i, ins, n + i if node.has_aux else None))
            elif isinstance(node, UpdateNode):
                self._add_step(node, node.make_step(session, slots))
            elif node.op_type == "gradient":
                request = node.request
                if id(request) in stepped_requests:
                    continue
                stepped_requests.add(id(request))
                self._add_step(node, backward_step(xp, request, order, slots))
            else:
                raise GraphError(f"cannot run node {node.name!r} of type {type(node).__name__}")
        if missing:
            names = ", ".join(repr(m) for m in missing)
            raise FeedError(f"missing feed for placeholder(s) {names}: pass them in feed_dict")
        self.template = template
        self.slots = slots
        self.fetch_slots = [slots[id(f)] for f in flat]
        has_updates = any(isinstance(x, UpdateNode) for x in order)
        # A fetched array must not alias session state (variables change in place): copy
        # variables, ops that may return an input unchanged, and everything when updating.
        self.copy = [has_updates or _may_alias_input(f) for f in flat]

    def _add_step(self, node, step) -> None:
        self.steps.append(step)
        self.step_nodes.append(node)

    def execute(self, session: Session, feed_dict):
        v = self.template.copy()
        if self.feeds:
            convert = session._convert_feed
            for slot, node, dtype, fixed, rank in self.feeds:
                v[slot] = convert(node, feed_dict[node], dtype, fixed, rank)
        store = session._values
        for slot, var in self.variables:
            v[slot] = store[var]
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


_ALIASING_OPS = frozenset({"identity", "stop_gradient", "reshape", "transpose", "dropout"})


def _may_alias_input(node: Node) -> bool:
    if isinstance(node, Variable):
        return True
    if isinstance(node, Operation):
        builtin = type(node).__module__.startswith("engine")
        return node.op_type in _ALIASING_OPS or not builtin
    return False


def _feed_check(node: Node):
    dtype = node.dtype if isinstance(node, (Placeholder, Variable)) else None
    shape = node.shape if isinstance(node, (Placeholder, Variable)) else None
    if shape is None:
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
    if type(value) is IndexedSlices:
        return value.to_numpy()
    value = to_numpy(value)
    if copy and isinstance(value, np.ndarray):
        return value.copy()
    return value


class Session:
    """Runs fetches of one graph; holds that graph's variable values and optimizer state.

    `device`: "cpu" (numpy) or "gpu" (CuPy); default from $PEPPERCORN_DEVICE, else cpu.
    `seed` seeds the session's random stream (dropout); default: the graph's `seed`.
    """

    def __init__(self, graph: Graph | None = None, device: str | None = None, seed=None) -> None:
        self.graph = graph if graph is not None else get_default_graph()
        self.device = resolve_device(device)
        self.xp = array_module(self.device)
        self.rng = make_rng(self.xp, seed if seed is not None else self.graph.seed)
        self._values: dict[Variable, object] = {}
        self._constants: dict[Constant, object] = {}
        self.optimizer_state: dict[object, dict] = {}
        self._plans: dict = {}
        self._version = self.graph.version
        self._closed = False

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the session's state; later runs raise."""
        self._values.clear()
        self._constants.clear()
        self.optimizer_state.clear()
        self._plans.clear()
        self._closed = True

    def run(self, fetches, feed_dict=None):
        """Values of `fetches` (a node, list/tuple or dict of nodes) in one forward pass."""
        if self._closed:
            raise GraphError("this Session is closed")
        if self.graph.version != self._version:
            self._plans.clear()
            self._version = self.graph.version
        fed = frozenset(feed_dict) if feed_dict else frozenset()
        key = (_fetch_key(fetches), fed)
        plan = self._plans.get(key)
        if plan is None:
            plan = _Plan(self, fetches, fed)
            self._plans[key] = plan
        return plan.execute(self, feed_dict)

    def initialize_variables(self, variables=None) -> None:
        """(Re)set variables (default: all of the graph) to their initial values."""
        for var in self.graph.variables if variables is None else variables:
            self._assign(var, var.initial_value)
        if variables is None:
            self.optimizer_state.clear()

    def get_value(self, var: Variable) -> np.ndarray:
        """A numpy copy of `var`'s current value in this session."""
        self._check_variable(var)
        self._ensure_initialized(var)
        return np.array(to_numpy(self._values[var]), copy=True)

    def set_value(self, var: Variable, value) -> None:
        """Overwrite `var`'s value (same shape; cast to its dtype), e.g. from a checkpoint."""
        self._check_variable(var)
        value = np.asarray(to_numpy(value))
        if value.shape != var.shape:
            raise ValueError(
                f"set_value: variable {var.name!r} has shape {var.shape}, got {value.shape}"
            )
        self._assign(var, value)

    def _assign(self, var: Variable, value) -> None:
        # In place when possible: optimizers may hold the stored array as a view.
        current = self._values.get(var)
        if current is None:
            self._values[var] = self.xp.array(value, dtype=var.dtype, copy=True)
        else:
            current[...] = self.xp.asarray(value)

    def _check_variable(self, var) -> None:
        if self._closed:
            raise GraphError("this Session is closed")
        if not isinstance(var, Variable) or var.graph is not self.graph:
            raise GraphError(f"{var!r} is not a variable of this session's graph")

    def _ensure_initialized(self, var: Variable) -> None:
        if var not in self._values:
            self._values[var] = self.xp.array(var.initial_value, copy=True)

    def _device_constant(self, node: Constant):
        value = node.value
        if isinstance(value, np.ndarray) and self.xp is not np:
            if node not in self._constants:
                self._constants[node] = self.xp.asarray(value)
            return self._constants[node]
        return value

    def _convert_feed(self, node, value, dtype, fixed, rank):
        xp = self.xp
        if type(value) is not xp.ndarray or (dtype is not None and value.dtype != dtype):
            try:
                value = xp.asarray(value, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise FeedError(f"cannot feed {node.name!r} as {dtype}: {exc}") from None
        if rank is not None:
            shape = value.shape
            if len(shape) != rank or any(shape[a] != d for a, d in fixed):
                expected = tuple(node.shape)
                raise FeedError(f"placeholder {node.name!r} expects shape {expected}, fed {shape}")
        return value
