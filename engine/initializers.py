"""TF-1's `tf.initializers` namespace: zeros, ones, constant, random_normal, glorot_uniform,
variance_scaling, he_normal, lecun_uniform, ... and the variable-initializer ops.

The classes come from `engine.init_ops`; he_* / lecun_* are functions of `seed` returning a
`VarianceScaling`, as in TF-1.
"""

from __future__ import annotations

from engine import init_ops

__all__ = [
    "constant",
    "global_variables",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "local_variables",
    "ones",
    "random_normal",
    "random_uniform",
    "tables_initializer",
    "truncated_normal",
    "variables",
    "variance_scaling",
    "zeros",
]

VarianceScaling = init_ops.VarianceScaling
zeros = init_ops.Zeros
ones = init_ops.Ones
constant = init_ops.Constant
random_normal = init_ops.RandomNormal
random_uniform = init_ops.RandomUniform
truncated_normal = init_ops.TruncatedNormal
glorot_uniform = init_ops.GlorotUniform
glorot_normal = init_ops.GlorotNormal
variance_scaling = init_ops.VarianceScaling


def he_normal(seed=None):
    """Truncated normal of stddev sqrt(2 / fan_in) (He et al.)."""
    return VarianceScaling(2.0, "fan_in", "truncated_normal", seed)


def he_uniform(seed=None):
    """Uniform in +-sqrt(6 / fan_in) (He et al.)."""
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


def lecun_normal(seed=None):
    """Truncated normal of stddev sqrt(1 / fan_in) (LeCun)."""
    return VarianceScaling(1.0, "fan_in", "truncated_normal", seed)


def lecun_uniform(seed=None):
    """Uniform in +-sqrt(3 / fan_in) (LeCun)."""
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


def global_variables():
    """An op initializing every variable (TF-1's tf.initializers.global_variables)."""
    from engine.session import global_variables_initializer

    return global_variables_initializer()


def variables(var_list, name="init"):
    """An op initializing the variables of `var_list`."""
    from engine.state_ops import variables_initializer

    return variables_initializer(var_list, name=name)


def local_variables():
    """An op initializing local variables (the engine has none)."""
    from engine.state_ops import local_variables_initializer

    return local_variables_initializer()


def tables_initializer(name="init_all_tables"):
    """An op initializing lookup tables (the engine has none)."""
    from engine.state_ops import tables_initializer as initializer

    return initializer()
