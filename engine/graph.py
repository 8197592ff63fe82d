"""Graph structure: nodes, graphs and the default graph (TF-1 style, seed-compatible).

Node contract (stable: `saved.py` and `passes.py` build on it; see README "Node contract"):

- Every node has `.name` (unique in its graph; user names kept, auto names TF-style
  `"matmul"`, `"matmul_1"`, ...), `.graph`, `.input_nodes` (list of nodes), `.consumers`
  and `.op_type`.
- `Placeholder` (`dtype`: numpy dtype or None, `shape`: tuple with None dims, or None),
  `Variable` (`initial_value`: numpy array, `trainable`, `dtype`, `shape`) and `Constant`
  (`value`: numpy array, or a Python scalar which stays weakly typed) are the leaves.
- `Operation` subclasses have a class attribute `op_type`; `OP_TYPES` maps op_type -> class
  and is filled by `__init_subclass__` (a subclass without its own `op_type` gets its class
  name).  `.attrs` holds every non-tensor constructor parameter as JSON-able values;
  `Operation.from_attrs(op_type, input_nodes, attrs, name)` rebuilds an op in the current
  default graph.  An op's state is exactly its inputs plus attrs.
- `graph.operations`, `graph.placeholders`, `graph.variables`, `graph.constants`,
  `graph.get_node(name)`.  Gradient, training and initialiser nodes are "meta" nodes kept in
  `graph.meta_nodes` only: they never appear in `operations` or in any `consumers` list.
- Rewiring an existing op goes through `op.set_input_nodes(nodes)`, which keeps `consumers`
  right and bumps `graph.version` so Sessions drop execution plans compiled before.
- `topological_order(fetches)` is pure: inputs before consumers, only what fetches need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import partial

import numpy as np

from engine.errors import GraphError

__all__ = [
    "OP_TYPES",
    "Constant",
    "Graph",
    "Node",
    "Operation",
    "Placeholder",
    "Variable",
    "as_node",
    "constant",
    "get_default_graph",
    "placeholder",
    "reset_default_graph",
    "topological_order",
]

OP_TYPES: dict[str, type] = {}


class Graph:
    """A set of nodes; `as_default()` makes it the graph new nodes are added to."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.placeholders: list[Placeholder] = []
        self.variables: list[Variable] = []
        self.constants: list[Constant] = []
        self.meta_nodes: list[Node] = []
        self.seed: int | None = None
        self.version = 0
        self._by_name: dict[str, Node] = {}
        self._name_counts: dict[str, int] = {}

    def as_default(self) -> _DefaultGraphScope:
        """Make this the default graph now; as a context manager, restore the previous on exit."""
        return _DefaultGraphScope(self)

    def get_node(self, name: str) -> Node:
        """The node called `name`; KeyError naming close matches when there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            near = sorted(n for n in self._by_name if n.split("_")[0] == name.split("_")[0])[:5]
            raise KeyError(f"graph has no node named {name!r}; similar names: {near}") from None

    def touch(self) -> None:
        """Record that the graph's wiring changed, so compiled plans are rebuilt."""
        self.version += 1

    def _register(self, node: Node, name: str | None) -> str:
        base = name or node.op_type
        unique = base
        if unique in self._by_name:
            count = self._name_counts.get(base, 0)
            while unique in self._by_name:
                count += 1
                unique = f"{base}_{count}"
            self._name_counts[base] = count
        self._by_name[unique] = node
        return unique


class _DefaultGraphScope:
    # Pushes at construction, so `graph.as_default()` without `with` (the seed's style) makes
    # the graph this thread's default; as a context manager it pops on exit.
    def __init__(self, graph: Graph) -> None:
        self._graph = graph
        _graph_stack().append(graph)

    def __enter__(self) -> Graph:
        return self._graph

    def __exit__(self, *exc: object) -> None:
        stack = _graph_stack()
        if stack and stack[-1] is self._graph:
            stack.pop()
        elif self._graph in stack:  # scopes closed out of order: drop this one only
            del stack[len(stack) - 1 - stack[::-1].index(self._graph)]


# As in TF-1: each thread has its own stack of default graphs, so two threads building or
# loading graphs at once never add nodes to each other's graph; a thread whose stack is empty
# uses the process-wide global default graph.
_local = threading.local()
_global_default = Graph()


def _graph_stack() -> list[Graph]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def get_default_graph() -> Graph:
    """The graph new nodes are added to: the innermost `as_default()` of this thread, else the
    global default graph."""
    stack = _graph_stack()
    return stack[-1] if stack else _global_default


def reset_default_graph() -> Graph:
    """Clear this thread's default-graph stack and replace the global default graph with a new
    empty one, which is returned (TF-1's `tf.reset_default_graph`)."""
    global _global_default
    _graph_stack().clear()
    _global_default = Graph()
    return _global_default


class Node:
    """Base of every graph node; arithmetic operators build ops (`a + b`, `a @ b`, `-a`)."""

    op_type = "node"

    def __init__(self, name: str | None = None, graph: Graph | None = None) -> None:
        self.graph = graph if graph is not None else get_default_graph()
        self.input_nodes: list[Node] = []
        self.consumers: list[Node] = []
        self.name = self.graph._register(self, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.op_type})>"

    def eval(self, session, feed_dict=None):
        """This node's value in `session` (TF-1's `tensor.eval(session=...)`)."""
        return session.run(self, feed_dict)

    # Nodes are dict keys (feed_dict, grad tables), so equality stays identity.
    __hash__ = object.__hash__
    # `array + node` must build one op via Node.__radd__, not an object array of ops.
    __array_ufunc__ = None

    def _binary(self, other, op_name, reverse=False):
        from engine import ops_linalg, ops_math

        fn = getattr(ops_linalg if op_name == "matmul" else ops_math, op_name)
        return fn(other, self) if reverse else fn(self, other)

    def __add__(self, other):
        return self._binary(other, "add")

    def __radd__(self, other):
        return self._binary(other, "add", reverse=True)

    def __sub__(self, other):
        return self._binary(other, "subtract")

    def __rsub__(self, other):
        return self._binary(other, "subtract", reverse=True)

    def __mul__(self, other):
        return self._binary(other, "multiply")

    def __rmul__(self, other):
        return self._binary(other, "multiply", reverse=True)

    def __truediv__(self, other):
        return self._binary(other, "divide")

    def __rtruediv__(self, other):
        return self._binary(other, "divide", reverse=True)

    def __matmul__(self, other):
        return self._binary(other, "matmul")

    def __rmatmul__(self, other):
        return self._binary(other, "matmul", reverse=True)

    def __neg__(self):
        from engine import ops_math

        return ops_math.negative(self)


def _as_dtype(dtype) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


class Placeholder(Node):
    """A graph input, fed through `Session.run(..., feed_dict)`."""

    op_type = "placeholder"

    def __init__(self, dtype=None, shape=None, name: str | None = None) -> None:
        super().__init__(name)
        self.dtype = _as_dtype(dtype)
        self.shape = None if shape is None else tuple(None if d is None else int(d) for d in shape)
        self.graph.placeholders.append(self)


def placeholder(dtype=None, shape=None, name: str | None = None) -> Placeholder:
    """A graph input of optional `dtype` and `shape` (None dims accept any size)."""
    return Placeholder(dtype, shape, name)


class Variable(Node):
    """A model parameter; its value lives in each Session, starting from `initial_value`."""

    op_type = "variable"

    def __init__(self, initial_value, name: str | None = None, trainable: bool = True, dtype=None):
        super().__init__(name)
        self.initial_value = np.array(initial_value, dtype=_as_dtype(dtype))
        self.dtype = self.initial_value.dtype
        self.shape = self.initial_value.shape
        self.trainable = bool(trainable)
        self.graph.variables.append(self)


class Constant(Node):
    """A fixed value; Python scalars stay Python scalars so they never upcast float32."""

    op_type = "constant"

    def __init__(self, value, dtype=None, name: str | None = None, graph: Graph | None = None):
        super().__init__(name, graph)
        weak = isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)
        self.value = value if weak and dtype is None else np.array(value, dtype=_as_dtype(dtype))
        self.graph.constants.append(self)


def constant(value, dtype=None, name: str | None = None) -> Constant:
    """A constant node holding `value`."""
    return Constant(value, dtype, name)


def as_node(value, graph: Graph | None = None) -> Node:
    """`value` itself when it is a node, else a constant holding it."""
    if isinstance(value, Node):
        return value
    return Constant(value, graph=graph)


class Operation(Node):
    """An op: `input_nodes` plus JSON-able `attrs`.

    Seed-style subclasses call `super().__init__([x, y])` and define `compute(*values)`.
    Built-in ops define `forward(xp, *values)` instead (xp is numpy or cupy) and may set
    `has_aux = True`, returning `(output, aux)`; aux reaches their gradient as `op.aux`.
    """

    op_type = "operation"
    has_aux = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "op_type" not in cls.__dict__:
            cls.op_type = cls.__name__
        # A user class named like a built-in op does not displace it: both share its gradient.
        existing = OP_TYPES.get(cls.op_type)
        if existing is None or not existing.__module__.startswith("engine"):
            OP_TYPES[cls.op_type] = cls

    def __init__(self, input_nodes: Iterable = (), name: str | None = None, **attrs) -> None:
        inputs = list(input_nodes)
        graph = next((n.graph for n in inputs if isinstance(n, Node)), get_default_graph())
        inputs = [as_node(x, graph) for x in inputs]
        for node in inputs:
            if node.graph is not graph:
                raise GraphError(
                    f"{self.op_type}: input {node.name!r} belongs to another graph than "
                    f"{inputs[0].name!r}; build each model inside one graph"
                )
        super().__init__(name, graph)
        self.input_nodes = inputs
        for node in inputs:
            node.consumers.append(self)
        self.attrs = dict(attrs)
        for key, value in attrs.items():
            setattr(self, key, value)
        graph.operations.append(self)

    @classmethod
    def from_attrs(cls, op_type: str, input_nodes: Iterable, attrs: dict, name: str | None = None):
        """Rebuild an op of `op_type` from its inputs and attrs in the current default graph."""
        klass = OP_TYPES.get(op_type)
        if klass is None:
            raise GraphError(f"unknown op type {op_type!r}; known: {sorted(OP_TYPES)}")
        op = klass.__new__(klass)
        Operation.__init__(op, input_nodes, name=name, **attrs)
        return op

    def set_input_nodes(self, nodes: Iterable) -> None:
        """Rewire this op's inputs (keeps consumers lists right, invalidates compiled plans)."""
        for node in self.input_nodes:
            if self in node.consumers:
                node.consumers.remove(self)
        self.input_nodes = [as_node(x, self.graph) for x in nodes]
        for node in self.input_nodes:
            node.consumers.append(self)
        self.graph.touch()

    def forward(self, xp, *input_values):
        raise NotImplementedError(f"op type {self.op_type!r} defines neither compute nor forward")

    def compute(self, *input_values):
        """The op's value from its input values (numpy); seed-style ops override this."""
        out = self.forward(np, *input_values)
        return out[0] if self.has_aux else out

    def kernel(self, xp, rng):
        """The callable a Session runs for this op on array module `xp`."""
        if type(self).forward is not Operation.forward:
            return partial(self.forward, xp)
        return self.compute


def topological_order(fetches: Iterable[Node], leaves: frozenset = frozenset()) -> list[Node]:
    """Every node `fetches` depend on, inputs before consumers; `leaves` are not expanded."""
    order: list[Node] = []
    state: dict[int, int] = {}  # 1: on the current path, 2: emitted
    for root in fetches:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            key = id(node)
            if expanded:
                state[key] = 2
                order.append(node)
                continue
            seen = state.get(key)
            if seen == 2:
                continue
            if seen == 1:
                raise GraphError(f"graph has a cycle through {node.name!r}")
            state[key] = 1
            stack.append((node, True))
            if node not in leaves:
                for parent in reversed(node.input_nodes):
                    if state.get(id(parent)) != 2:
                        stack.append((parent, False))
    return order
