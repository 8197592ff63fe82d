"""TF-1's tf.layers: dense (and the Dense layer class), dropout, flatten.

Variables are TF-1's "<layer name>/kernel" and "<layer name>/bias", made with
`get_variable` inside a `variable_scope` when engine.variable_scope provides them (so
`reuse=True` / AUTO_REUSE share them as in TF-1); otherwise created directly with the same
names, an existing layer's variables reused when `reuse` is set.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from engine import ops_array, ops_linalg
from engine import variable_scope as _scopes
from engine.graph import Variable, get_default_graph
from engine.ops_nn import dropout as _nn_dropout
from engine.ops_nn_activations import bias_add
from engine.ops_nn_common import static_dtype, static_shape

__all__ = ["Dense", "Dropout", "dense", "dropout", "flatten"]

REGULARIZATION_LOSSES = "regularization_losses"  # TF-1's GraphKeys.REGULARIZATION_LOSSES


def _glorot_uniform(shape, dtype, graph):
    # TF-1's default kernel initializer: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).
    fan_in, fan_out = (shape[-2], shape[-1]) if len(shape) >= 2 else (shape[0], shape[0])
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    seed = None if graph.seed is None else [graph.seed, len(graph.variables)]
    return np.random.default_rng(seed).uniform(-limit, limit, size=shape).astype(dtype)


def _initial_value(initializer, shape, dtype, graph):
    if initializer is None:
        return _glorot_uniform(shape, dtype, graph)
    if callable(initializer):
        return np.asarray(initializer(shape, dtype=dtype), dtype=dtype)
    return np.broadcast_to(np.asarray(initializer, dtype=dtype), shape).copy()


def _unique_layer_name(graph, base: str) -> str:
    taken = {name.split("/")[0] for name in graph._by_name}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


class Dense:
    """A fully connected layer: activation(inputs @ kernel + bias) (TF-1's tf.layers.Dense).

    Variables are made on the first call, from the input's last static dimension."""

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        trainable=True,
        name=None,
        reuse=None,
        dtype=None,
    ) -> None:
        self.units = int(units)
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.trainable = bool(trainable)
        self.reuse = reuse
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._given_name = name
        self.name = name
        self.kernel = None
        self.bias = None
        self.built = False

    @property
    def variables(self) -> list:
        """The layer's variables (kernel, then bias)."""
        return [v for v in (self.kernel, self.bias) if v is not None]

    weights = variables

    @property
    def trainable_variables(self) -> list:
        """The layer's variables when trainable, else none."""
        return self.variables if self.trainable else []

    trainable_weights = trainable_variables

    def __call__(self, inputs):
        """activation(inputs @ kernel + bias); variables made on the first call."""
        in_shape = static_shape(inputs)
        if in_shape.rank is None or in_shape[-1] is None:
            raise ValueError(
                "The last dimension of the inputs to `Dense` should be defined. Found `None`."
            )
        dtype = self.dtype or static_dtype(inputs) or np.dtype(np.float32)
        graph = getattr(inputs, "graph", None) or get_default_graph()
        with self._scope(graph) as scope_name:
            if not self.built:
                self._build(graph, int(in_shape[-1]), dtype, scope_name)
            outputs = self._apply(inputs, in_shape)
        return outputs

    apply = __call__

    def _scope(self, graph):
        scope_fn = getattr(_scopes, "variable_scope", None)
        if scope_fn is not None and hasattr(_scopes, "get_variable"):
            return _TfScope(scope_fn, self)
        return _PlainScope(graph, self)

    def _build(self, graph, in_dim, dtype, scope_name) -> None:
        self.kernel = self._variable(
            graph,
            scope_name,
            "kernel",
            [in_dim, self.units],
            dtype,
            self.kernel_initializer,
            self.kernel_regularizer,
        )
        if self.use_bias:
            bias_init = self.bias_initializer or _zeros
            self.bias = self._variable(
                graph, scope_name, "bias", [self.units], dtype, bias_init, self.bias_regularizer
            )
        self.built = True

    def _variable(self, graph, scope_name, leaf, shape, dtype, initializer, regularizer):
        get_variable = getattr(_scopes, "get_variable", None)
        if get_variable is not None and scope_name is None:
            return get_variable(
                leaf,
                shape=shape,
                dtype=dtype,
                initializer=initializer,
                regularizer=regularizer,
                trainable=self.trainable,
            )
        full = f"{scope_name}/{leaf}"
        existing = graph._by_name.get(full)
        if isinstance(existing, Variable):
            if not self.reuse:
                raise ValueError(
                    f"Variable {full} already exists, disallowed. Did you mean to set "
                    "reuse=True or reuse=tf.AUTO_REUSE in VarScope?"
                )
            return existing
        if self.reuse is True:
            raise ValueError(
                f"Variable {full} does not exist, or was not created with tf.get_variable(). "
                "Did you mean to set reuse=tf.AUTO_REUSE in VarScope?"
            )
        value = _initial_value(initializer, shape, dtype, graph)
        with graph.name_scope(None) if hasattr(graph, "name_scope") else _nothing():
            variable = Variable(value, name=full, trainable=self.trainable)
        if regularizer is not None:
            penalty = regularizer(variable)
            if penalty is not None and hasattr(graph, "add_to_collection"):
                graph.add_to_collection(REGULARIZATION_LOSSES, penalty)
        return variable

    def _apply(self, inputs, in_shape):
        rank = in_shape.rank
        if rank == 2:
            outputs = ops_linalg.matmul(inputs, self.kernel)
        else:
            # Over the last axis of a higher-rank input: fold the leading axes into rows.
            flat = ops_array.reshape(inputs, [-1, in_shape[-1]])
            outputs = ops_linalg.matmul(flat, self.kernel)
            lead = [-1 if d is None else d for d in in_shape[:-1]]
            if lead.count(-1) > 1:
                raise ValueError(f"Dense: inputs of shape {in_shape} have several unknown dims")
            outputs = ops_array.reshape(outputs, [*lead, self.units])
        if self.use_bias:
            outputs = bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        if self.activity_regularizer is not None:
            penalty = self.activity_regularizer(outputs)
            graph = outputs.graph
            if penalty is not None and hasattr(graph, "add_to_collection"):
                graph.add_to_collection(REGULARIZATION_LOSSES, penalty)
        return outputs


def _zeros(shape, dtype=None, partition_info=None):
    """The default bias initializer (TF-1's zeros_initializer())."""
    return np.zeros(shape, dtype=dtype or np.float32)


@contextlib.contextmanager
def _nothing():
    yield None


class _TfScope:
    # variable_scope(name or default "dense") from engine.variable_scope; yields None so the
    # layer creates its variables with get_variable.
    def __init__(self, scope_fn, layer: Dense) -> None:
        if layer.built:
            self._cm = scope_fn(layer._scope_object, reuse=True)
        elif layer._given_name is None:
            self._cm = scope_fn(None, default_name="dense", reuse=layer.reuse)
        else:
            self._cm = scope_fn(layer._given_name, reuse=layer.reuse)
        self._layer = layer

    def __enter__(self):
        scope = self._cm.__enter__()
        if not self._layer.built:
            self._layer._scope_object = scope
            self._layer.name = getattr(scope, "name", self._layer.name)
        return None

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class _PlainScope:
    # Without variable scopes: the layer's name is its variables' prefix and its ops' name scope.
    def __init__(self, graph, layer: Dense) -> None:
        if layer.name is None:
            layer.name = _unique_layer_name(graph, "dense")
        self._name = layer.name
        self._cm = graph.name_scope(layer.name) if hasattr(graph, "name_scope") else _nothing()

    def __enter__(self):
        self._cm.__enter__()
        return self._name

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def dense(
    inputs,
    units,
    activation=None,
    use_bias=True,
    kernel_initializer=None,
    bias_initializer=None,
    kernel_regularizer=None,
    bias_regularizer=None,
    activity_regularizer=None,
    kernel_constraint=None,
    bias_constraint=None,
    trainable=True,
    name=None,
    reuse=None,
):
    """activation(inputs @ kernel + bias) with variables "<name>/kernel" (glorot_uniform by
    default) and "<name>/bias" (zeros by default); name defaults to "dense", "dense_1", ..."""
    layer = Dense(
        units,
        activation=activation,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer,
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        activity_regularizer=activity_regularizer,
        kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint,
        trainable=trainable,
        name=name,
        reuse=reuse,
    )
    return layer(inputs)


class Dropout:
    """tf.layers.Dropout: `layer(inputs, training=False)` drops with probability `rate`."""

    def __init__(self, rate=0.5, noise_shape=None, seed=None, name=None) -> None:
        self.rate = rate
        self.noise_shape = noise_shape
        self.seed = seed
        self.name = name

    def __call__(self, inputs, training=False):
        """inputs with dropout applied when `training` (a bool or a boolean node)."""
        return _nn_dropout(
            inputs,
            rate=self.rate,
            noise_shape=self.noise_shape,
            seed=self.seed,
            name=self.name,
            training=training,
        )

    apply = __call__


def dropout(inputs, rate=0.5, noise_shape=None, seed=None, training=False, name=None):
    """Drop each element with probability `rate` when `training` (default False: identity);
    `training` may be a boolean node (a placeholder) switching it per run."""
    return Dropout(rate, noise_shape, seed, name)(inputs, training=training)


def flatten(inputs, name=None, data_format="channels_last"):
    """inputs reshaped to [batch, product of the other dims] (those must be known)."""
    shape = static_shape(inputs)
    if shape.rank is None or any(d is None for d in shape[1:]):
        raise ValueError(f"flatten: inputs need known non-batch dims, got shape {shape}")
    size = int(np.prod(shape[1:], dtype=np.int64)) if shape.rank > 1 else 1
    return ops_array.reshape(inputs, [-1, size], name=name)
