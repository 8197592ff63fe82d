"""A TensorFlow-1-style graph engine: `import engine as tf`.

Build a graph (`placeholder`, `Variable`, ops, operators on nodes), run it with
`Session.run(fetches, feed_dict)`, differentiate with `gradients` / `compute_gradients`, and
train with `train.*Optimizer(...).minimize(loss)`.  numpy is the reference backend; CuPy is
used with `Session(device="gpu")` or PEPPERCORN_DEVICE=gpu.  See README.md ("Node contract").
"""

from __future__ import annotations

import sys as _sys

import numpy as _np

from engine import errors, initializers, layers, losses, nn, train  # TF-1's namespaces
from engine.autodiff import (
    GradientTensor,
    NotDifferentiable,
    RegisterGradient,
    compute_gradients,
    gradients,
)
from engine.clip_ops import *  # noqa: E402, F403
from engine.creation import *  # noqa: E402, F403
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
from engine.init_ops import *  # noqa: E402, F403
from engine.ops_array import *  # noqa: E402, F403
from engine.ops_index import *  # noqa: E402, F403
from engine.ops_linalg import *  # noqa: E402, F403
from engine.ops_math import *  # noqa: E402, F403
from engine.ops_nn import *  # noqa: E402, F403
from engine.ops_shape import *  # noqa: E402, F403
from engine.passes import optimize_for_inference
from engine.random_ops import *  # noqa: E402, F403
from engine.saved import SavedGraph, SavedGraphError, load, save
from engine.session import *  # noqa: F403
from engine.shapes import *  # noqa: E402, F403
from engine.sparse import IndexedSlices
from engine.sparse_tensor import *  # noqa: E402, F403
from engine.state_ops import *  # noqa: E402, F403
from engine.variable_scope import *  # noqa: E402, F403

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool_ = _np.int32, _np.int64, _np.bool_

# By name through sys.modules: a star import may rebind a module's name (variable_scope is
# both a module and TF-1's context manager).
_STAR_MODULES = tuple(
    _sys.modules[f"engine.{name}"]
    for name in (
        "session",
        "clip_ops",
        "creation",
        "init_ops",
        "ops_array",
        "ops_index",
        "ops_linalg",
        "ops_math",
        "ops_nn",
        "ops_shape",
        "random_ops",
        "shapes",
        "sparse_tensor",
        "state_ops",
        "variable_scope",
    )
)

__all__ = [
    "errors",
    *(name for module in _STAR_MODULES for name in module.__all__),
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
    "Variable",
    "bool_",
    "compute_gradients",
    "constant",
    "float16",
    "float32",
    "float64",
    "get_default_graph",
    "gradients",
    "initializers",
    "int32",
    "int64",
    "layers",
    "load",
    "losses",
    "optimize_for_inference",
    "nn",
    "placeholder",
    "save",
    "reset_default_graph",
    "topological_order",
    "train",
]
