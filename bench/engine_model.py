"""The graph-engine side of the engine benchmark: the NCF-MLP built with `engine`.

Two spellings of the same model: `fused_dense` layers (the engine's own op), and plain TF-1
code (`tf.matmul(h, W) + b`, `tf.nn.relu`), which the Session fuses when it compiles the
training plan (engine/plan_fusion.py), as Grappler does for TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.engine_workload import HIDDEN_UNITS, LEARNING_RATE, Batch

__all__ = ["engine_optimizer_name", "engine_trainer", "gpu_available"]


def gpu_available() -> str | None:
    """None when the engine can run on CuPy here, else why not."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed: pip install -e '.[gpu]' (cupy-cuda12x)"
    from engine.backend import cupy_available

    return None if cupy_available() else "CuPy is installed but sees no CUDA device"


def engine_optimizer_name() -> str:
    """The engine optimizer the benchmark trains with: LazyAdam (TF-1 contrib's, touched rows
    only) where the engine has it, else AdamOptimizer."""
    import engine as tf

    if hasattr(tf.train, "LazyAdamOptimizer"):
        return "LazyAdamOptimizer"
    return "AdamOptimizer"


def _dense_layer(tf, hidden, kernel, bias, activation: str, fused: bool):
    if fused:
        return tf.fused_dense(hidden, kernel, bias, activation=activation)
    hidden = tf.matmul(hidden, kernel) + bias
    return tf.nn.relu(hidden) if activation == "relu" else hidden


def engine_trainer(
    weights: dict[str, np.ndarray], device: str = "cpu", fused: bool = True, with_sync=False
):
    """A function running one Adam step on a batch and returning the (pre-update) loss.

    `fused`: dense layers as `fused_dense` ops, or as plain matmul + add + nn.relu.  With
    `with_sync`, returns (step, sync) where sync waits for the device.
    """
    import engine as tf

    graph = tf.Graph()
    with graph.as_default():
        users = tf.placeholder(tf.int32, [None], name="user_idx")
        items = tf.placeholder(tf.int32, [None], name="item_idx")
        labels = tf.placeholder(tf.float32, [None, 1], name="label")
        user_table = tf.Variable(weights["user_embedding"], name="user_embedding")
        item_table = tf.Variable(weights["item_embedding"], name="item_embedding")
        hidden = tf.concat(
            [tf.nn.embedding_lookup(user_table, users), tf.nn.embedding_lookup(item_table, items)],
            axis=1,
        )
        for layer in range(len(HIDDEN_UNITS)):
            kernel = tf.Variable(weights[f"dense{layer}/kernel"], name=f"dense{layer}/kernel")
            bias = tf.Variable(weights[f"dense{layer}/bias"], name=f"dense{layer}/bias")
            activation = "relu" if layer < len(HIDDEN_UNITS) - 1 else "linear"
            hidden = _dense_layer(tf, hidden, kernel, bias, activation, fused)
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=hidden))
        optimizer = getattr(tf.train, engine_optimizer_name())(LEARNING_RATE)
        train_op = optimizer.minimize(loss)
        init = tf.global_variables_initializer()
    session = tf.Session(graph=graph, device=device)
    session.run(init)
    fetches = [loss, train_op]

    def step(batch: Batch) -> float:
        value, _ = session.run(
            fetches, {users: batch.users, items: batch.items, labels: batch.labels}
        )
        return value

    if not with_sync:
        return step
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if session.device == "gpu":
        import cupy

        sync = cupy.cuda.Device().synchronize
    return step, sync
