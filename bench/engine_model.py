"""The graph-engine side of the engine benchmark: the NCF-MLP built with `engine`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.engine_workload import HIDDEN_UNITS, LEARNING_RATE, Batch

__all__ = ["engine_trainer", "gpu_available"]


def gpu_available() -> str | None:
    """None when the engine can run on CuPy here, else why not."""
    try:
        import cupy  # noqa: F401
    except ImportError:
        return "CuPy is not installed: pip install -e '.[gpu]' (cupy-cuda12x)"
    from engine.backend import cupy_available

    return None if cupy_available() else "CuPy is installed but sees no CUDA device"


def engine_trainer(
    weights: dict[str, np.ndarray], device: str = "cpu", fused: bool = True, with_sync=False
):
    """A function running one Adam step on a batch and returning the (pre-update) loss.

    `fused`: dense layers as `fused_dense` ops (like torch's nn.Linear) or as matmul + add +
    relu.  With `with_sync`, returns (step, sync) where sync waits for the device.
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
            [tf.embedding_lookup(user_table, users), tf.embedding_lookup(item_table, items)], axis=1
        )
        for layer in range(len(HIDDEN_UNITS)):
            kernel = tf.Variable(weights[f"dense{layer}/kernel"], name=f"dense{layer}/kernel")
            bias = tf.Variable(weights[f"dense{layer}/bias"], name=f"dense{layer}/bias")
            activation = "relu" if layer < len(HIDDEN_UNITS) - 1 else "linear"
            if fused:
                hidden = tf.fused_dense(hidden, kernel, bias, activation=activation)
            else:
                hidden = tf.matmul(hidden, kernel) + bias
                hidden = tf.relu(hidden) if activation == "relu" else hidden
        loss = tf.reduce_mean(tf.sigmoid_cross_entropy_with_logits(labels=labels, logits=hidden))
        train_op = tf.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
    session = tf.Session(graph, device=device)
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
