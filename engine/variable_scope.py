"""get_variable, variable_scope (with reuse) and name_scope, as TF-1.

Variable names come from the variable scope only ("outer/inner/w"), op names from the name
scope; `variable_scope` opens both.  Each graph keeps its own store of the variables made by
`get_variable` and of how often each variable scope was opened (for `default_name`).
"""

from __future__ import annotations

from engine.graph import Node, get_default_graph
from engine.variable_store import (
    AUTO_REUSE,
    VariableScope,
    VariableStore,
    get_variable_in,
    join,
    store_of,
)

__all__ = [
    "AUTO_REUSE",
    "VariableScope",
    "get_variable",
    "get_variable_scope",
    "name_scope",
    "variable_scope",
]


def get_variable_scope() -> VariableScope:
    """The current variable scope of the default graph."""
    return store_of().scope


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
        store = store_of(graph)
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
            full_name = join(parent.name, name)
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


def _unique_scope(store: VariableStore, parent: VariableScope, prefix: str) -> str:
    # TF-1's _get_unique_variable_scope: "dense", then "dense_1", "dense_2", ...
    name = join(parent.name, prefix)
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
    return get_variable_in(
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
