"""TF-1's tf.nn namespace: activations, softmax and cross-entropies, dropout, normalisation,
embedding lookups, in_top_k / top_k.  Each name is the function of the module that owns it."""

from __future__ import annotations

from engine.ops_index import top_k
from engine.ops_math import relu, sigmoid, softplus, tanh
from engine.ops_nn import (
    dropout,
    l2_loss,
    log_softmax,
    sigmoid_cross_entropy_with_logits,
    softmax,
    softmax_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
)
from engine.ops_nn_activations import (
    bias_add,
    crelu,
    elu,
    leaky_relu,
    relu6,
    relu_layer,
    selu,
    softsign,
    swish,
    xw_plus_b,
)
from engine.ops_nn_embedding import embedding_lookup, embedding_lookup_sparse
from engine.ops_nn_norm import (
    batch_norm_with_global_normalization,
    batch_normalization,
    compute_average_loss,
    l2_normalize,
    log_poisson_loss,
    moments,
    normalize_moments,
    scale_regularization_loss,
    sufficient_statistics,
    weighted_moments,
)
from engine.ops_nn_safe_embedding import safe_embedding_lookup_sparse
from engine.ops_nn_xent import (
    in_top_k,
    sparse_softmax_cross_entropy_with_logits,
    weighted_cross_entropy_with_logits,
    zero_fraction,
)

__all__ = [
    "batch_norm_with_global_normalization",
    "batch_normalization",
    "bias_add",
    "compute_average_loss",
    "crelu",
    "dropout",
    "elu",
    "embedding_lookup",
    "embedding_lookup_sparse",
    "in_top_k",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "log_poisson_loss",
    "log_softmax",
    "moments",
    "normalize_moments",
    "relu",
    "relu6",
    "relu_layer",
    "safe_embedding_lookup_sparse",
    "scale_regularization_loss",
    "selu",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "silu",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "softplus",
    "softsign",
    "sparse_softmax_cross_entropy_with_logits",
    "sufficient_statistics",
    "swish",
    "tanh",
    "top_k",
    "weighted_cross_entropy_with_logits",
    "weighted_moments",
    "xw_plus_b",
    "zero_fraction",
]

silu = swish
