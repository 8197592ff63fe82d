"""The TF-1 names issue #18 asks for: each exists in the engine under its TF-1 name, and its
parameters start with TensorFlow 2.21 compat.v1's, in the same order.

For a function the parameters are its own; for a class, its `__init__`'s; for "A.b", the
method. TF's positional-or-keyword parameters must be the engine's first parameters, in order
(so positional calls port) and positional-or-keyword there too; TF's keyword-only ones must
be accepted by name; a `*args` in TF needs one in the engine. The engine may add parameters
after TF's (e.g. Session's `device`).
"""

from __future__ import annotations

import inspect

import pytest

NAMESPACES = ["nn", "train", "losses", "layers", "initializers", "errors"]

CREATION = [
    "zeros", "ones", "zeros_like", "ones_like", "fill", "range", "constant", "placeholder",
    "random_normal", "truncated_normal", "random_uniform", "set_random_seed",
    "zeros_initializer", "ones_initializer", "constant_initializer",
    "random_normal_initializer", "truncated_normal_initializer", "random_uniform_initializer",
    "glorot_uniform_initializer", "glorot_normal_initializer", "variance_scaling_initializer",
    "initializers.zeros", "initializers.ones", "initializers.constant",
    "initializers.random_normal", "initializers.random_uniform",
    "initializers.truncated_normal", "initializers.glorot_uniform",
    "initializers.glorot_normal", "initializers.variance_scaling", "initializers.he_normal",
    "get_variable", "variable_scope", "name_scope", "get_variable_scope", "AUTO_REUSE",
]  # fmt: skip
VARIABLES_AND_CONTROL = [
    "Variable", "assign", "assign_add", "group", "control_dependencies", "no_op", "identity",
    "trainable_variables", "global_variables", "variables_initializer",
    "global_variables_initializer", "gradients", "stop_gradient",
]  # fmt: skip
MATH = [
    "add", "subtract", "multiply", "divide", "matmul", "square", "sqrt", "exp", "log",
    "abs", "pow", "maximum", "minimum", "sin", "cos", "log1p", "rsqrt", "sign", "nn.softplus",
    "add_n", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "cumsum",
    "einsum", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
]  # fmt: skip
SHAPE_AND_INDEX = [
    "shape", "cast", "reshape", "transpose", "concat", "argmax", "argmin", "where",
    "expand_dims", "squeeze", "stack", "unstack", "tile", "split", "one_hot", "slice",
    "gather", "gather_nd", "boolean_mask", "pad", "sequence_mask", "nn.top_k",
    "SparseTensor",
]  # fmt: skip
NN = [
    "nn.relu", "nn.sigmoid", "nn.tanh", "nn.softmax", "nn.dropout", "nn.l2_loss",
    "nn.sigmoid_cross_entropy_with_logits", "nn.softmax_cross_entropy_with_logits",
    "nn.sparse_softmax_cross_entropy_with_logits", "nn.softmax_cross_entropy_with_logits_v2",
    "nn.embedding_lookup", "nn.embedding_lookup_sparse", "nn.bias_add", "nn.leaky_relu",
    "nn.elu", "nn.l2_normalize", "nn.moments", "nn.batch_normalization", "nn.in_top_k",
    "layers.dense", "losses.mean_squared_error", "losses.sigmoid_cross_entropy",
    "losses.softmax_cross_entropy", "losses.sparse_softmax_cross_entropy", "losses.log_loss",
]  # fmt: skip
TRAIN = [
    "train.Saver", "train.Saver.save", "train.Saver.restore", "train.latest_checkpoint",
    "train.get_or_create_global_step", "train.get_global_step", "train.exponential_decay",
    "train.piecewise_constant", "train.Optimizer.minimize", "train.Optimizer.compute_gradients",
    "train.Optimizer.apply_gradients", "train.GradientDescentOptimizer",
    "train.MomentumOptimizer", "train.AdagradOptimizer", "train.AdamOptimizer",
    "train.FtrlOptimizer", "train.RMSPropOptimizer",
    "clip_by_global_norm", "clip_by_norm", "clip_by_value",
]  # fmt: skip
SESSION_AND_GRAPH = [
    "Session", "Session.run", "Graph", "Graph.get_tensor_by_name", "Graph.as_default",
    "get_default_graph", "reset_default_graph", "ConfigProto",
    "errors.FailedPreconditionError", "errors.InvalidArgumentError", "errors.OpError",
]  # fmt: skip

NAMES = CREATION + VARIABLES_AND_CONTROL + MATH + SHAPE_AND_INDEX + NN + TRAIN + SESSION_AND_GRAPH

# TF 1.15's documented signatures, for names TF 2.21 no longer gives (tf.compat.v1.layers
# needs Keras 2, and TF 2.21 ships Keras 3).
TF1_SIGNATURES = {
    "layers.dense": [
        "inputs", "units", "activation", "use_bias", "kernel_initializer", "bias_initializer",
        "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
        "bias_constraint", "trainable", "name", "reuse",
    ],
}  # fmt: skip

# Parameters TF added after TF 1.15 (TF-1 code never passes them; some sit before `name`,
# which TF 1.15 code may pass positionally): left out of TF 2.21's list before comparing.
ADDED_AFTER_TF_1_15 = {
    "matmul": {"output_type", "grad_a", "grad_b"},
    "gather_nd": {"bad_indices_policy"},
    "nn.top_k": {"index_type"},
    "train.Optimizer.apply_gradients": {"skip_gradients_aggregation"},
    "train.AdamOptimizer": {"use_own_namescope_for_non_slot_vars"},
    "train.FtrlOptimizer": {"beta"},
}

# Names checked for existence only, with the reason their signature is not compared.
EXISTENCE_ONLY = {
    "ConfigProto": "a protobuf message class: TF's signature is (*args, **kwargs)",
    "AUTO_REUSE": "a constant",
    "errors.FailedPreconditionError": "an exception class (TF's takes node_def, op, message)",
    "errors.InvalidArgumentError": "an exception class (TF's takes node_def, op, message)",
    "errors.OpError": "an exception class (TF's takes node_def, op, message, error_code)",
}


def _resolve(root, dotted: str):
    obj = root
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _parameters(obj) -> list[inspect.Parameter]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = list(inspect.signature(target).parameters.values())
    return [p for p in params if p.name != "self"]


def _signature_problems(mine: list[inspect.Parameter], theirs: list[inspect.Parameter]):
    kind = inspect.Parameter
    problems = []
    positional = [p.name for p in theirs if p.kind == kind.POSITIONAL_OR_KEYWORD]
    head = [p.name for p in mine[: len(positional)]]
    if head != positional:
        problems.append(f"positional parameters {head} != TF's {positional}")
    elif any(p.kind != kind.POSITIONAL_OR_KEYWORD for p in mine[: len(positional)]):
        problems.append(f"TF's positional parameters {positional} are not all positional here")
    names = {p.name for p in mine}
    accepts_any_keyword = any(p.kind == kind.VAR_KEYWORD for p in mine)
    for p in theirs:
        if p.kind == kind.KEYWORD_ONLY and p.name not in names and not accepts_any_keyword:
            problems.append(f"keyword {p.name!r} not accepted")
        if p.kind == kind.VAR_POSITIONAL and not any(q.kind == kind.VAR_POSITIONAL for q in mine):
            problems.append(f"*{p.name} not accepted")
    return problems


def test_namespaces_exist(eng):
    missing = [name for name in NAMESPACES if not inspect.ismodule(getattr(eng, name, None))]
    assert not missing, f"engine lacks TF-1 namespaces {missing}"


@pytest.mark.parametrize("name", NAMES)
def test_name_exists_with_tensorflow_parameters(eng, tfv1, name):
    """`tf.<name>` exists in the engine; its parameters begin with TF's, in TF's order."""
    try:
        mine = _resolve(eng, name)
    except AttributeError:
        pytest.fail(f"engine has no tf.{name}")
    if name in EXISTENCE_ONLY:
        return
    if name in TF1_SIGNATURES:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        theirs = [inspect.Parameter(n, kind) for n in TF1_SIGNATURES[name]]
    else:
        later = ADDED_AFTER_TF_1_15.get(name, set())
        theirs = [p for p in _parameters(_resolve(tfv1, name)) if p.name not in later]
    problems = _signature_problems(_parameters(mine), theirs)
    assert not problems, f"tf.{name}: " + "; ".join(problems)
