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

import re
import threading
from collections.abc import Iterable
from functools import partial, partialmethod

import numpy as np

from engine.errors import GraphError
from engine.graph_scopes import ControlDependencies, NameScope
from engine.shape_inference import WEAK, inferred
from engine.shapes import TensorShape, as_shape

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
        self._scope = ""  # the current name scope, "" or "a/b/"
        self._used_scopes: set[str] = set()
        self._control_stack: list[list[Node]] = []
        self.collections: dict[str, list] = {}

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

    def get_tensor_by_name(self, name: str) -> Node:
        """The node called `name`, TF-1 style "x:0" (only output 0 exists) or plain "x"."""
        base, sep, index = name.rpartition(":")
        if sep and index.isdigit():
            if index != "0":
                raise KeyError(f"node {base!r} has one output, :0; asked for {name!r}")
            name = base
        return self.get_node(name)

    get_operation_by_name = get_node

    def get_collection(self, key: str, scope: str | None = None) -> list:
        """A copy of the collection `key` (values whose name `re.match`es `scope`, as TF-1)."""
        values = list(self.collections.get(key, []))
        if scope is None:
            return values
        return [v for v in values if re.match(scope, getattr(v, "name", ""))]

    def add_to_collection(self, key: str, value) -> None:
        """Append `value` to the collection `key`."""
        self.collections.setdefault(key, []).append(value)

    def name_scope(self, name: str | None) -> NameScope:
        """A context manager prefixing new node names with "<scope>/<name>/" (TF-1's rules:
        a reused scope name gets "_1"; a name ending with "/" re-enters that exact scope;
        None or "" goes back to the root).  Yields the full scope string."""
        return NameScope(self, name)

    def control_dependencies(self, control_inputs) -> ControlDependencies:
        """Ops created inside run only after `control_inputs` (None clears the outer ones)."""
        return ControlDependencies(self, control_inputs)

    def get_name_scope(self) -> str:
        """The current name scope without its trailing "/"."""
        return self._scope.rstrip("/")

    def touch(self) -> None:
        """Record that the graph's wiring changed, so compiled plans are rebuilt."""
        self.version += 1

    def _register(self, node: Node, name: str | None) -> str:
        base = self._scope + (name or node.op_type)
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
        # Nodes that must run before this one without feeding it (tf.control_dependencies).
        self.control_inputs: list[Node] = [n for group in self.graph._control_stack for n in group]
        self.name = self.graph._register(self, name)

    @property
    def op(self) -> Node:
        """The node itself: TF-1 code reads `tensor.op.name`; here a tensor is its op."""
        return self

    @property
    def shape(self) -> TensorShape:
        """The static shape: known dims as ints, None where only a run can tell."""
        override = self.__dict__.get("_set_shape")
        shape = self._static_shape()
        return shape if override is None else shape.merge_with(override)

    def get_shape(self) -> TensorShape:
        """TF-1's name for `.shape`."""
        return self.shape

    def set_shape(self, shape) -> None:
        """Declare what is known of the shape (merged with what inference finds)."""
        self._set_shape = self.shape.merge_with(as_shape(shape))

    def _static_shape(self) -> TensorShape:
        return TensorShape(None)

    @property
    def dtype(self):
        """The numpy dtype of the value, None when not known before a run."""
        return self.__dict__.get("_dtype")

    @dtype.setter
    def dtype(self, value) -> None:
        self._dtype = value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.op_type})>"

    def run(self, feed_dict=None, session=None) -> None:
        """Run this node (an initializer, a train op) in `session` or the default one (TF-1's
        `op.run()`); gives nothing back."""
        self.eval(feed_dict, session)

    def eval(self, feed_dict=None, session=None):
        """This node's value in `session`, default: the session entered with `with` (TF-1)."""
        from engine.session import Session, get_default_session

        if isinstance(feed_dict, Session):  # the engine's older order: eval(session, feed)
            feed_dict, session = session, feed_dict
        session = session if session is not None else get_default_session()
        if session is None:
            raise ValueError(
                f"{self.name!r}.eval(): no session given and no default session: pass "
                "session= or call it inside `with tf.Session() as sess:`"
            )
        return session.run(self, feed_dict)

    # Nodes are dict keys (feed_dict, grad tables), so equality stays identity.
    __hash__ = object.__hash__
    # `array + node` must build one op via Node.__radd__, not an object array of ops.
    __array_ufunc__ = None

    def _binary(self, other, op_name, reverse=False):
        import engine

        fn = getattr(engine, op_name)
        return fn(other, self) if reverse else fn(self, other)

    def _unary(self, op_name):
        import engine

        return getattr(engine, op_name)(self)

    # TF-1's Tensor operators; == and != stay identity (nodes are dict keys), as in TF-1.
    __add__ = partialmethod(_binary, op_name="add")
    __radd__ = partialmethod(_binary, op_name="add", reverse=True)
    __sub__ = partialmethod(_binary, op_name="subtract")
    __rsub__ = partialmethod(_binary, op_name="subtract", reverse=True)
    __mul__ = partialmethod(_binary, op_name="multiply")
    __rmul__ = partialmethod(_binary, op_name="multiply", reverse=True)
    __truediv__ = partialmethod(_binary, op_name="divide")
    __rtruediv__ = partialmethod(_binary, op_name="divide", reverse=True)
    __floordiv__ = partialmethod(_binary, op_name="floordiv")
    __rfloordiv__ = partialmethod(_binary, op_name="floordiv", reverse=True)
    __mod__ = partialmethod(_binary, op_name="floormod")
    __rmod__ = partialmethod(_binary, op_name="floormod", reverse=True)
    __pow__ = partialmethod(_binary, op_name="pow")
    __rpow__ = partialmethod(_binary, op_name="pow", reverse=True)
    __matmul__ = partialmethod(_binary, op_name="matmul")
    __rmatmul__ = partialmethod(_binary, op_name="matmul", reverse=True)
    __lt__ = partialmethod(_binary, op_name="less")
    __le__ = partialmethod(_binary, op_name="less_equal")
    __gt__ = partialmethod(_binary, op_name="greater")
    __ge__ = partialmethod(_binary, op_name="greater_equal")
    __and__ = partialmethod(_binary, op_name="logical_and")
    __rand__ = partialmethod(_binary, op_name="logical_and", reverse=True)
    __or__ = partialmethod(_binary, op_name="logical_or")
    __ror__ = partialmethod(_binary, op_name="logical_or", reverse=True)
    __xor__ = partialmethod(_binary, op_name="logical_xor")
    __rxor__ = partialmethod(_binary, op_name="logical_xor", reverse=True)
    __neg__ = partialmethod(_unary, op_name="negative")
    __abs__ = partialmethod(_unary, op_name="abs")
    __invert__ = partialmethod(_unary, op_name="logical_not")

    def __getitem__(self, key):
        """TF-1's slicing: x[:, 0], x[1:3], x[..., None] (a strided_slice op)."""
        from engine.ops_slice import getitem

        return getitem(self, key)

    def __iter__(self):
        raise TypeError(f"{self.name!r}: a graph node is not iterable; use tf.unstack to split it")

    def __bool__(self):
        raise TypeError(
            f"{self.name!r}: a graph node has no truth value before a run; use tf.cond or "
            "tf.where in the graph, or session.run to get its value"
        )


def _as_dtype(dtype) -> np.dtype | None:
    return None if dtype is None else np.dtype(dtype)


class Placeholder(Node):
    """A graph input, fed through `Session.run(..., feed_dict)`."""

    op_type = "placeholder"

    def __init__(self, dtype=None, shape=None, name: str | None = None) -> None:
        super().__init__(name)
        self.control_inputs = []  # leaves run no earlier or later (TF-1 ignores them too)
        self.dtype = _as_dtype(dtype)
        self._declared_shape = TensorShape(shape)
        self.graph.placeholders.append(self)

    def _static_shape(self) -> TensorShape:
        return self._declared_shape


def placeholder(dtype=None, shape=None, name: str | None = None) -> Placeholder:
    """A graph input of optional `dtype` and `shape` (None dims accept any size)."""
    return Placeholder(dtype, shape, name)


class Constant(Node):
    """A fixed value; Python scalars stay Python scalars so they never upcast float32."""

    op_type = "constant"

    def __init__(self, value, dtype=None, name: str | None = None, graph: Graph | None = None):
        super().__init__(name, graph)
        self.control_inputs = []
        weak = isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)
        self.value = value if weak and dtype is None else np.array(value, dtype=_as_dtype(dtype))
        self.graph.constants.append(self)

    @property
    def weakly_typed(self) -> bool:
        """A Python scalar that takes the dtype of what it meets (never upcasts float32)."""
        return not isinstance(self.value, np.ndarray)

    @property
    def dtype(self):
        if self.weakly_typed:  # what TF-1 would make of it
            return np.dtype(WEAK_SCALAR_DTYPES[type(self.value)])
        return self.value.dtype

    def _static_shape(self) -> TensorShape:
        return TensorShape(np.shape(self.value))


# The dtype TF-1 gives a Python scalar (a weakly typed constant reports it as its dtype).
WEAK_SCALAR_DTYPES = {bool: np.bool_, int: np.int32, float: np.float32}
_TF_DEFAULTS = {np.dtype(np.float64): np.float32, np.dtype(np.int64): np.int32}


def constant(value, dtype=None, shape=None, name: str | None = None, verify_shape=False):
    """A constant node holding `value` (TF-1: a scalar `value` is broadcast to `shape`; Python
    lists of floats or ints become float32 or int32, as TF-1 converts them)."""
    if dtype is None and isinstance(value, (list, tuple)):
        array = np.asarray(value)
        value = array.astype(_TF_DEFAULTS.get(array.dtype, array.dtype), copy=False)
    if shape is not None:
        array = np.asarray(value, dtype=_as_dtype(dtype))
        shape = tuple(int(d) for d in shape)
        if verify_shape and array.shape != shape:
            raise TypeError(f"constant: expected shape {shape}, value has shape {array.shape}")
        if array.size == 1:
            value = np.full(shape, array.reshape(()), dtype=array.dtype)
        elif array.size == int(np.prod(shape, dtype=np.int64)):
            value = array.reshape(shape)
        else:
            raise ValueError(f"constant: {array.size} values cannot fill shape {shape}")
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
            if key not in _NODE_PROPERTIES:  # read those from self.attrs
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

    def _static_shape(self) -> TensorShape:
        return inferred(self)[0]

    @property
    def dtype(self):
        """The output's numpy dtype (`infer_dtype`, else numpy's result_type of the inputs)."""
        declared = self.__dict__.get("_dtype")
        return declared if declared is not None else inferred(self)[1]

    @dtype.setter
    def dtype(self, value) -> None:
        self._dtype = value

    def infer_dtype(self, *input_dtypes):
        """The output dtype from the inputs' (None: unknown); weak scalars are left out."""
        known = [d for d in input_dtypes if d is not WEAK]
        if not known or any(d is None for d in known):
            return None
        return np.result_type(*known)

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


_NODE_PROPERTIES = frozenset({"shape", "dtype", "op"})


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
                for parent in reversed(node.input_nodes + node.control_inputs):
                    if state.get(id(parent)) != 2:
                        stack.append((parent, False))
    return order


# Variable subclasses Node and reads topological_order: defined in its own module, which
# imports this one, so it is bound here last.
from engine.variables import Variable  # noqa: E402
