"""TF-1's `tf.train` namespace: optimizers, the global step, learning-rate schedules, Saver.

Optimizers (TF-1 signatures and update rules, dense and row-sparse): GradientDescent,
Momentum (Nesterov too), Adagrad, Adam (exactly TF-1's, sparse gradients included),
LazyAdam (tf.contrib.opt's: only touched rows change), RMSProp and FTRL.  Each keeps one set
of slots per variable per session (`state_dict` / `load_state_dict`, `get_slot_names`).
"""

from __future__ import annotations

from engine.global_step import (
    create_global_step,
    get_global_step,
    get_or_create_global_step,
    global_step,
)
from engine.learning_rate import (
    cosine_decay,
    exponential_decay,
    inverse_time_decay,
    natural_exp_decay,
    piecewise_constant,
    polynomial_decay,
)
from engine.optimizers import Optimizer, TrainOp
from engine.optimizers_adaptive import AdamOptimizer, LazyAdamOptimizer, RMSPropOptimizer
from engine.optimizers_basic import (
    AdagradOptimizer,
    FtrlOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
)
from engine.saver import (
    CheckpointState,
    Saver,
    checkpoint_exists,
    get_checkpoint_state,
    latest_checkpoint,
)

__all__ = [
    "AdagradOptimizer",
    "AdamOptimizer",
    "CheckpointState",
    "FtrlOptimizer",
    "GradientDescentOptimizer",
    "LazyAdamOptimizer",
    "MomentumOptimizer",
    "Optimizer",
    "RMSPropOptimizer",
    "Saver",
    "TrainOp",
    "checkpoint_exists",
    "cosine_decay",
    "create_global_step",
    "exponential_decay",
    "get_checkpoint_state",
    "get_global_step",
    "get_or_create_global_step",
    "global_step",
    "inverse_time_decay",
    "latest_checkpoint",
    "natural_exp_decay",
    "piecewise_constant",
    "polynomial_decay",
]
