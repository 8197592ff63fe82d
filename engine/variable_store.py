"""The variables `get_variable` made and the variable scopes opened, per graph, and the
`VariableScope` objects (TF-1's reuse modes and defaults for get_variable)."""

from __future__ import annotations

import enum
import weakref

import numpy as np

from engine import init_ops
from engine.graph import Node, Variable, get_default_graph
from engine.shapes import TensorShape

__all__ = ["AUTO_REUSE", "VariableScope", "VariableStore", "get_variable_in", "join", "store_of"]


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
        return get_variable_in(self, name, shape, dtype, initializer, **kwargs)

    def __repr__(self) -> str:
        return f"<VariableScope {self.name!r} reuse={self._reuse}>"


class VariableStore:
    """One graph's current variable scope, get_variable's variables, scope open counts."""

    def __init__(self) -> None:
        self.scope = VariableScope(False)
        self.variables: dict[str, Variable] = {}
        self.scope_counts: dict[str, int] = {}


_stores: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def store_of(graph=None) -> VariableStore:
    graph = graph if graph is not None else get_default_graph()
    store = _stores.get(graph)
    if store is None:
        store = _stores[graph] = VariableStore()
    return store


def join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def get_variable_in(
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
    store = store_of(graph)
    full_name = join(scope.name, name)
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
    if initializer is None:  # a node initializer has no truth value: test for None
        initializer = scope.initializer
    value = _initial_value(full_name, shape, dtype, initializer)
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
