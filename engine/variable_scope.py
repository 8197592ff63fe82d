"""get_variable, variable_scope (with reuse) and name_scope, as TF-1.

Variable names come from the variable scope only ("outer/inner/w"), op names from the name
scope; `variable_scope` opens both.  Each graph keeps its own store of the variables made by
`get_variable` and of how often each variable scope was opened (for `default_name`).
"""

from __future__ import annotations

import enum
import weakref

import numpy as np

from engine import init_ops
from engine.graph import Node, Variable, get_default_graph
from engine.shapes import TensorShape

__all__ = [
    "AUTO_REUSE",
    "VariableScope",
    "get_variable",
    "get_variable_scope",
    "name_scope",
    "variable_scope",
]


class _ReuseMode(enum.Enum):
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE  # get_variable creates a variable or returns the existing one


class VariableScope:
    """A variable scope: its name, reuse mode and defaults for `get_variable`."""

    def __init__(
        self,
        reuse,
        name="",
        initializer=None,
        regularizer=None,
        dtype=np.float32,
        name_scope="",
    ):
        self.name = name
        self._reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.dtype = np.dtype(dtype)
        self.original_name_scope = name_scope

    @property
    def reuse(self):
        """False/None (create only), True (reuse only) or AUTO_REUSE."""
        return self._reuse

    def reuse_variables(self) -> None:
        """Reuse variables in this scope from now on (TF-1's scope.reuse_variables())."""
        self._reuse = True

    def set_initializer(self, initializer) -> None:
        """The default initializer of `get_variable` in this scope."""
        self.initializer = initializer

    def set_regularizer(self, regularizer) -> None:
        """The default regularizer of `get_variable` in this scope."""
        self.regularizer = regularizer

    def set_dtype(self, dtype) -> None:
        """The default dtype of `get_variable` in this scope."""
        self.dtype = np.dtype(dtype)

    def get_variable(self, name, shape=None, dtype=None, initializer=None, **kwargs):
        """`get_variable` as if this scope were the current one."""
        return _get_variable(self, name, shape, dtype, initializer, **kwargs)

    def __repr__(self) -> str:
        return f"<VariableScope {self.name!r} reuse={self._reuse}>"


class _Store:
    def __init__(self) -> None:
        self.scope = VariableScope(False)
        self.variables: dict[str, Variable] = {}
        self.scope_counts: dict[str, int] = {}


_stores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _store(graph=None) -> _Store:
    graph = graph if graph is not None else get_default_graph()
    store = _stores.get(graph)
    if store is None:
        store = _stores[graph] = _Store()
    return store


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph."""
    return _store().scope


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class variable_scope:  # noqa: N801 - TF-1's name
    """Context manager: a variable scope (and a name scope of the same name) for
    `get_variable`; `reuse=True` / `AUTO_REUSE` shares variables, None inherits."""

    def __init__(
        self,
        name_or_scope,
        default_name=None,
        values=None,
        initializer=None,
        regularizer=None,
        caching_device=None,
        partitioner=None,
        custom_getter=None,
        reuse=None,
        dtype=None,
        use_resource=None,
        constraint=None,
        auxiliary_name_scope=True,
    ):
        if name_or_scope is None and default_name is None:
            raise TypeError("variable_scope: if name_or_scope is None, default_name must be given")
        if reuse is True and name_or_scope is None:
            raise ValueError("variable_scope: reuse=True cannot be used without a name_or_scope")
        if reuse not in (None, True, False, AUTO_REUSE):
            raise ValueError(
                f"variable_scope: reuse must be True, False, None or AUTO_REUSE, got {reuse!r}"
            )
        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._values = values
        self._initializer = initializer
        self._regularizer = regularizer
        self._reuse = reuse
        self._dtype = dtype
        self._auxiliary_name_scope = auxiliary_name_scope

    def __enter__(self) -> VariableScope:
        graph = _graph_of(self._values)
        store = _store(graph)
        parent = store.scope
        given = self._name_or_scope
        if isinstance(given, VariableScope):
            # TF-1: a new name scope named after the scope's last part ("tower_1/"); the
            # scope keeps its original name scope.
            full_name = given.name
            reuse = self._reuse if self._reuse else given.reuse
            base = given
            op_name = given.name.split("/")[-1]
        else:
            name = given if given is not None else _unique_scope(store, parent, self._default_name)
            full_name = _join(parent.name, name)
            reuse = self._reuse if self._reuse else parent.reuse
            base = parent
            op_name = given if given is not None else self._default_name
        self._name_scope = None
        if self._auxiliary_name_scope:
            self._name_scope = graph.name_scope(op_name)
            op_scope = self._name_scope.__enter__()
        else:
            op_scope = graph._scope
        if isinstance(given, VariableScope):
            op_scope = given.original_name_scope
        store.scope_counts[full_name] = store.scope_counts.get(full_name, 0) + 1
        scope = VariableScope(
            reuse,
            full_name,
            self._initializer if self._initializer is not None else base.initializer,
            self._regularizer if self._regularizer is not None else base.regularizer,
            self._dtype if self._dtype is not None else base.dtype,
            op_scope,
        )
        self._store, self._previous = store, parent
        store.scope = scope
        return scope

    def __exit__(self, *exc) -> None:
        self._store.scope = self._previous
        if self._name_scope is not None:
            self._name_scope.__exit__(*exc)


def _graph_of(values):
    for value in values or ():
        if isinstance(value, Node):
            return value.graph
    return get_default_graph()


def _unique_scope(store: _Store, parent: VariableScope, prefix: str) -> str:
    # TF-1's _get_unique_variable_scope: "dense", then "dense_1", "dense_2", ...
    name = _join(parent.name, prefix)
    if store.scope_counts.get(name, 0) == 0:
        return prefix
    index = 1
    while store.scope_counts.get(f"{name}_{index}", 0) > 0:
        index += 1
    return f"{prefix}_{index}"


class name_scope:  # noqa: N801 - TF-1's name
    """Context manager: prefix new op names with "<scope>/<name>/" (a name ending with "/"
    re-enters that exact scope; None goes back to the root).  Yields the scope string."""

    def __init__(self, name, default_name=None, values=None):
        self._name = default_name if name is None else name
        self._graph = _graph_of(values)

    def __enter__(self) -> str:
        self._scope = self._graph.name_scope(self._name)
        return self._scope.__enter__()

    def __exit__(self, *exc) -> None:
        self._scope.__exit__(*exc)


def get_variable(
    name,
    shape=None,
    dtype=None,
    initializer=None,
    regularizer=None,
    trainable=None,
    collections=None,
    caching_device=None,
    partitioner=None,
    validate_shape=True,
    use_resource=None,
    custom_getter=None,
    constraint=None,
    synchronization=None,
    aggregation=None,
):
    """The variable "<variable scope>/<name>": created (TF-1 rules: default initializer
    glorot_uniform for floats, zeros otherwise) unless the scope reuses, then returned."""
    return _get_variable(
        get_variable_scope(),
        name,
        shape,
        dtype,
        initializer,
        regularizer=regularizer,
        trainable=trainable,
        collections=collections,
        validate_shape=validate_shape,
    )


def _get_variable(
    scope,
    name,
    shape,
    dtype,
    initializer,
    regularizer=None,
    trainable=None,
    collections=None,
    validate_shape=True,
    **_ignored,
):
    graph = get_default_graph()
    store = _store(graph)
    full_name = _join(scope.name, name)
    shape = None if shape is None else TensorShape(shape)
    existing = store.variables.get(full_name)
    if existing is not None:
        if not scope.reuse:
            raise ValueError(
                f"Variable {full_name} already exists, disallowed. Did you mean to set "
                "reuse=True or reuse=tf.AUTO_REUSE in VarScope?"
            )
        if shape is not None and validate_shape and not shape.is_compatible_with(existing.shape):
            raise ValueError(
                f"Trying to share variable {full_name}, but specified shape {shape} and found "
                f"shape {existing.shape}."
            )
        if dtype is not None and np.dtype(dtype) != existing.dtype:
            raise ValueError(
                f"Trying to share variable {full_name}, but specified dtype {np.dtype(dtype).name}"
                f" and found dtype {existing.dtype.name}."
            )
        return existing
    if scope.reuse is True:
        raise ValueError(
            f"Variable {full_name} does not exist, or was not created with tf.get_variable(). "
            "Did you mean to set reuse=tf.AUTO_REUSE in VarScope?"
        )
    dtype = np.dtype(dtype) if dtype is not None else scope.dtype
    value = _initial_value(full_name, shape, dtype, initializer or scope.initializer)
    with graph.name_scope(None):  # variable names ignore the name scope (TF-1)
        var = Variable(
            value,
            name=full_name,
            trainable=True if trainable is None else trainable,
            collections=_extra_collections(collections),
            dtype=dtype if not isinstance(value, Node) else None,
        )
    store.variables[full_name] = var
    regularizer = regularizer if regularizer is not None else scope.regularizer
    if regularizer is not None:
        with graph.name_scope(None), graph.name_scope(f"{full_name}/Regularizer/"):
            loss = regularizer(var)
        if loss is not None:
            graph.add_to_collection("regularization_losses", loss)
    return var


def _extra_collections(collections):
    # Every variable is in GLOBAL_VARIABLES (and trainable ones in TRAINABLE_VARIABLES) by
    # the graph's own lists; only other collections are recorded.
    if collections is None:
        return None
    return [c for c in collections if c not in ("variables", "trainable_variables")] or None


def _initial_value(full_name, shape, dtype, initializer):
    if isinstance(initializer, Node):
        if shape is not None:
            raise ValueError(
                f"get_variable {full_name}: if initializer is a tensor, do not specify shape"
            )
        return initializer
    if initializer is not None and not callable(initializer):
        value = np.asarray(initializer, dtype=dtype)
        if shape is not None and not shape.is_compatible_with(value.shape):
            raise ValueError(
                f"get_variable {full_name}: initializer of shape {value.shape} does not match "
                f"shape {shape}"
            )
        return value
    if shape is None or not shape.is_fully_defined():
        raise ValueError(
            f"Shape of a new variable ({full_name}) must be fully defined, but instead was {shape}."
        )
    if initializer is None:
        initializer = init_ops.GlorotUniform() if dtype.kind == "f" else init_ops.Zeros()
    elif isinstance(initializer, type):  # TF-1 accepts the class itself
        initializer = initializer(dtype=dtype)
    value = initializer(tuple(shape), dtype=dtype, partition_info=None)
    return value


# `from engine.variable_scope import *` rebinds `engine.variable_scope` to the class above
# (TF-1's tf.variable_scope); engine/__init__ then reads `__all__` through that name.
variable_scope.__all__ = __all__
