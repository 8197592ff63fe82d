"""Variable state and control flow between updates, under TF-1's names.

`assign` / `assign_add` / `assign_sub` change a variable in the session when run and give its
new value; `group` and `no_op` bundle updates; `control_dependencies` orders them.  Like every
update (train ops, initialisers), they run after the plain ops of the same run, and whatever
depends on them (data or control) runs after them.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np

from engine.graph import Node, Variable, as_node, get_default_graph
from engine.plan import UpdateNode, uninitialized
from engine.session import global_variables_initializer

__all__ = [
    "GraphKeys",
    "add_to_collection",
    "all_variables",
    "assign",
    "assign_add",
    "assign_sub",
    "control_dependencies",
    "get_collection",
    "get_collection_ref",
    "global_variables",
    "group",
    "initialize_all_variables",
    "initialize_variables",
    "is_variable_initialized",
    "local_variables",
    "local_variables_initializer",
    "model_variables",
    "no_op",
    "tables_initializer",
    "trainable_variables",
    "variables_initializer",
]


class GraphKeys:
    """TF-1's standard collection names."""

    GLOBAL_VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    LOSSES = "losses"
    UPDATE_OPS = "update_ops"
    SUMMARIES = "summaries"
    GLOBAL_STEP = "global_step"
    TRAIN_OP = "train_op"
    INIT_OP = "init_op"


class _Assign(UpdateNode):
    """Meta node: set (or add to, subtract from) a variable; its value is the new value."""

    op_type = "assign"

    def __init__(self, ref: Variable, value, mode: str, name: str | None) -> None:
        if not isinstance(ref, Variable):
            raise TypeError(f"{mode}: ref must be a Variable, got {type(ref).__name__}")
        value = as_node(value, ref.graph)
        super().__init__(name or mode.capitalize(), ref.graph)
        self.ref, self.mode = ref, mode
        self.input_nodes = [value]
        self.graph.meta_nodes.append(self)
        known = value.shape
        if known.rank is not None and mode == "assign" and not known.is_compatible_with(ref.shape):
            raise ValueError(
                f"{self.name}: cannot assign a value of shape {known} to variable "
                f"{ref.name!r} of shape {ref.shape}"
            )

    def _static_shape(self):
        return self.ref.shape

    @property
    def dtype(self):
        return self.ref.dtype

    def make_step(self, session, slots):
        src, out, ref, mode = slots[id(self.input_nodes[0])], slots[id(self)], self.ref, self.mode
        store = session._values

        def step(v):
            value = v[src]
            current = store.get(ref)
            if mode == "assign":
                if np.shape(value) != ref.shape:
                    raise ValueError(
                        f"{self.name}: cannot assign a value of shape {np.shape(value)} to "
                        f"variable {ref.name!r} of shape {ref.shape}"
                    )
                session._assign(ref, value)
            elif current is None:
                raise uninitialized(ref)
            elif mode == "assign_add":
                current += value
            else:
                current -= value
            v[out] = store[ref]

        return step


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    """An update setting `ref` to `value` when run; evaluates to the new value."""
    return _Assign(ref, value, "assign", name)


def assign_add(ref, value, use_locking=None, name=None):
    """An update adding `value` to `ref` when run; evaluates to the new value."""
    return _Assign(ref, value, "assign_add", name)


def assign_sub(ref, value, use_locking=None, name=None):
    """An update subtracting `value` from `ref` when run; evaluates to the new value."""
    return _Assign(ref, value, "assign_sub", name)


class _NoOp(UpdateNode):
    """Meta node doing nothing; with control inputs, it is `group`'s result."""

    op_type = "no_op"

    def __init__(self, control_inputs=(), name: str | None = None) -> None:
        super().__init__(name or "NoOp", get_default_graph())
        self.control_inputs = list(self.control_inputs) + list(control_inputs)
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        return _nothing


def _nothing(v) -> None:
    return None


def no_op(name=None):
    """A node that does nothing when run."""
    return _NoOp(name=name)


def group(*inputs, **kwargs):
    """A node that runs all `inputs` (train ops, assignments, ...) and gives nothing."""
    name = kwargs.pop("name", None)
    if kwargs:
        raise TypeError(f"group: unknown keyword arguments {sorted(kwargs)}")
    flat = []
    for item in inputs:
        flat.extend(item if isinstance(item, (list, tuple)) else [item])
    for node in flat:
        if not isinstance(node, Node):
            raise TypeError(f"group: {node!r} is not a graph node")
    return _NoOp(flat, name=name or "group_deps")


def control_dependencies(control_inputs):
    """Ops (and updates) created inside run only after `control_inputs`; None clears them."""
    return get_default_graph().control_dependencies(control_inputs)


class _InitializeSome(UpdateNode):
    op_type = "init"

    def __init__(self, variables, name: str) -> None:
        variables = list(variables)
        super().__init__(name, variables[0].graph)
        self.variables = variables
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        return lambda v: session.initialize_variables(self.variables)


def variables_initializer(var_list, name="init"):
    """A node that sets the variables in `var_list` to their initial values when run."""
    var_list = list(var_list)
    if not var_list:
        return no_op(name=name)
    return _InitializeSome(var_list, name)


def initialize_variables(var_list, name="init"):
    """TF-1's deprecated name of `variables_initializer`."""
    return variables_initializer(var_list, name)


def initialize_all_variables():
    """TF-1's deprecated name of `global_variables_initializer`."""
    return global_variables_initializer()


def local_variables_initializer():
    """A no-op: the engine has no local variables."""
    return no_op(name="init_1")


def tables_initializer(name="init_all_tables"):
    """A no-op: the engine has no lookup tables."""
    return no_op(name=name)


def _scoped(variables, scope):
    if scope is None:
        return list(variables)
    return [v for v in variables if re.match(scope, v.name)]


def global_variables(scope=None):
    """Every variable of the default graph (names matching `scope` when given)."""
    return _scoped(get_default_graph().variables, scope)


def all_variables():
    """TF-1's deprecated name of `global_variables`."""
    return global_variables()


def trainable_variables(scope=None):
    """The default graph's trainable variables (names matching `scope` when given)."""
    return _scoped([v for v in get_default_graph().variables if v.trainable], scope)


def local_variables(scope=None):
    """Always empty: the engine has no local variables."""
    return []


def model_variables(scope=None):
    """The variables added to the MODEL_VARIABLES collection."""
    return get_collection(GraphKeys.MODEL_VARIABLES, scope)


def get_collection(key, scope=None):
    """A copy of the default graph's collection `key`; the variable collections are derived
    from the graph's variables, as TF-1 keeps them."""
    if key == GraphKeys.GLOBAL_VARIABLES:
        return global_variables(scope)
    if key == GraphKeys.TRAINABLE_VARIABLES:
        return trainable_variables(scope)
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key):
    """The default graph's collection `key` itself (a list callers may append to)."""
    return get_default_graph().collections.setdefault(key, [])


def add_to_collection(name, value):
    """Append `value` to the default graph's collection `name`."""
    get_default_graph().add_to_collection(name, value)


class _IsInitialized(UpdateNode):
    op_type = "is_variable_initialized"

    def __init__(self, var: Variable) -> None:
        super().__init__("IsVariableInitialized", var.graph)
        self.var = var
        self.graph.meta_nodes.append(self)

    def make_step(self, session, slots):
        out, var = slots[id(self)], self.var

        def step(v):
            v[out] = np.bool_(var in session._values)

        return step


def is_variable_initialized(variable):
    """A node whose value says whether `variable` has a value in the session."""
    return _IsInitialized(variable)


def _initializer(var: Variable):
    node = var.__dict__.get("_initializer_node")
    if node is None:
        with var.graph.as_default():
            node = var._initializer_node = _InitializeSome([var], f"{var.name}/Assign")
    return node


def _method(fn):
    return lambda var: partial(fn, var)


# What `Variable.__getattr__` offers beyond the node basics (TF-1's Variable methods).
VARIABLE_METHODS = {
    "assign": _method(assign),
    "assign_add": _method(assign_add),
    "assign_sub": _method(assign_sub),
    "initializer": _initializer,
    "initialized_value": lambda var: lambda: var,
    "value": lambda var: lambda: var,
    "read_value": lambda var: lambda: var,
    "load": lambda var: lambda value, session=None: _load(var, value, session),
}


def _load(var: Variable, value, session=None) -> None:
    from engine.session import get_default_session

    session = session if session is not None else get_default_session()
    if session is None:
        raise ValueError(f"{var.name}.load(): no session given and no default session")
    session.set_value(var, value)
