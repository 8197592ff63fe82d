"""A TensorFlow-1-style graph engine: `import engine as tf`.

Build a graph (`placeholder`, `Variable`, ops, operators on nodes), run it with
`Session.run(fetches, feed_dict)`, differentiate with `gradients` / `compute_gradients`, and
train with `train.*Optimizer(...).minimize(loss)`.  numpy is the reference backend; CuPy is
used with `Session(device="gpu")` or PEPPERCORN_DEVICE=gpu.  See README.md ("Node contract").
"""

from __future__ import annotations

import numpy as _np

from engine import train
from engine.autodiff import (
    GradientTensor,
    NotDifferentiable,
    RegisterGradient,
    compute_gradients,
    gradients,
)
from engine.errors import FeedError, GraphError, NoGradientError, OpExecutionError
from engine.graph import (
    OP_TYPES,
    Constant,
    Graph,
    Node,
    Operation,
    Placeholder,
    Variable,
    constant,
    get_default_graph,
    placeholder,
    reset_default_graph,
    topological_order,
)
from engine.ops_array import (
    cast,
    clip_by_value,
    concat,
    embedding_lookup,
    gather,
    identity,
    reduce_max,
    reduce_mean,
    reduce_sum,
    reshape,
    stop_gradient,
    transpose,
)
from engine.ops_linalg import FUSED_ACTIVATIONS, fused_dense, matmul
from engine.ops_math import (
    add,
    divide,
    exp,
    log,
    multiply,
    negative,
    relu,
    sigmoid,
    sqrt,
    square,
    subtract,
    tanh,
)
from engine.ops_nn import (
    dropout,
    l2_loss,
    log_softmax,
    sigmoid_cross_entropy_with_logits,
    softmax,
    softmax_cross_entropy_with_logits,
)
from engine.passes import optimize_for_inference
from engine.saved import SavedGraph, SavedGraphError, load, save
from engine.session import Session, global_variables_initializer
from engine.sparse import IndexedSlices

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool_ = _np.int32, _np.int64, _np.bool_

__all__ = [
    "FUSED_ACTIVATIONS",
    "OP_TYPES",
    "Constant",
    "FeedError",
    "GradientTensor",
    "Graph",
    "GraphError",
    "IndexedSlices",
    "NoGradientError",
    "Node",
    "NotDifferentiable",
    "OpExecutionError",
    "Operation",
    "Placeholder",
    "RegisterGradient",
    "SavedGraph",
    "SavedGraphError",
    "Session",
    "Variable",
    "add",
    "bool_",
    "cast",
    "clip_by_value",
    "compute_gradients",
    "concat",
    "constant",
    "divide",
    "dropout",
    "embedding_lookup",
    "exp",
    "float16",
    "float32",
    "float64",
    "fused_dense",
    "gather",
    "get_default_graph",
    "global_variables_initializer",
    "gradients",
    "identity",
    "int32",
    "int64",
    "l2_loss",
    "load",
    "log",
    "log_softmax",
    "matmul",
    "optimize_for_inference",
    "multiply",
    "negative",
    "placeholder",
    "reduce_max",
    "reduce_mean",
    "reduce_sum",
    "relu",
    "save",
    "reset_default_graph",
    "reshape",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "sqrt",
    "square",
    "stop_gradient",
    "subtract",
    "tanh",
    "topological_order",
    "train",
    "transpose",
]
