"""TF-1's tf.layers: dense (and the Dense layer class), dropout, flatten.

A dense layer's variables are TF-1's "<scope>/<layer name>/kernel" and ".../bias", made with
`get_variable` inside `variable_scope(name)` (default "dense", "dense_1", ...), so `reuse=True`
/ AUTO_REUSE share them as in TF-1; its ops are in the name scope of the same name.
"""

from __future__ import annotations

import numpy as np

from engine import ops_array, ops_linalg
from engine.ops_nn import dropout as _nn_dropout
from engine.ops_nn_activations import bias_add
from engine.ops_nn_common import static_dtype, static_shape
from engine.variable_scope import get_variable, variable_scope

__all__ = ["Dense", "Dropout", "dense", "dropout", "flatten"]

REGULARIZATION_LOSSES = "regularization_losses"  # TF-1's GraphKeys.REGULARIZATION_LOSSES


def _zeros(shape, dtype=None, partition_info=None):
    """The default bias initializer (TF-1's zeros_initializer())."""
    return np.zeros(shape, dtype=dtype or np.float32)


class Dense:
    """A fully connected layer: activation(inputs @ kernel + bias) (TF-1's tf.layers.Dense).

    Variables are made on the first call, from the input's last static dimension; later calls
    reuse them."""

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
        self.bias_initializer = bias_initializer or _zeros
        self.kernel_regularizer = kernel_regularizer
        self.bias_regularizer = bias_regularizer
        self.activity_regularizer = activity_regularizer
        self.trainable = bool(trainable)
        self.reuse = reuse
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.name = name
        self.kernel = None
        self.bias = None
        self._scope = None  # the VariableScope of the first call
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
        if self.built:
            scope = variable_scope(self._scope, reuse=True)
        elif self.name is None:
            scope = variable_scope(None, default_name="dense", reuse=self.reuse)
        else:
            scope = variable_scope(self.name, reuse=self.reuse)
        with scope as opened:
            if not self.built:
                self._scope = opened
                self.name = opened.name.split("/")[-1]
                dtype = self.dtype or static_dtype(inputs) or np.dtype(np.float32)
                self._build(int(in_shape[-1]), dtype)
            return self._apply(inputs, in_shape)

    apply = __call__

    def _build(self, in_dim: int, dtype) -> None:
        self.kernel = get_variable(
            "kernel",
            shape=[in_dim, self.units],
            dtype=dtype,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            trainable=self.trainable,
        )
        if self.use_bias:
            self.bias = get_variable(
                "bias",
                shape=[self.units],
                dtype=dtype,
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                trainable=self.trainable,
            )
        self.built = True

    def _apply(self, inputs, in_shape):
        if in_shape.rank == 2:
            outputs = ops_linalg.matmul(inputs, self.kernel)
        else:
            # Over the last axis of a higher-rank input: fold the leading axes into rows.
            lead = [-1 if d is None else d for d in in_shape[:-1]]
            if lead.count(-1) > 1:
                raise ValueError(f"Dense: inputs of shape {in_shape} have several unknown dims")
            flat = ops_array.reshape(inputs, [-1, in_shape[-1]])
            outputs = ops_array.reshape(ops_linalg.matmul(flat, self.kernel), [*lead, self.units])
        if self.use_bias:
            outputs = bias_add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        if self.activity_regularizer is not None:
            penalty = self.activity_regularizer(outputs)
            if penalty is not None:
                outputs.graph.add_to_collection(REGULARIZATION_LOSSES, penalty)
        return outputs


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
