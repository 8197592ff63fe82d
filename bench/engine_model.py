"""The graph-engine side of the engine benchmark: the NCF-MLP built with `training.graph`."""

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
    from training.graph.backend import cupy_available

    return None if cupy_available() else "CuPy is installed but sees no CUDA device"


def engine_trainer(
    weights: dict[str, np.ndarray], device: str = "cpu", fused: bool = True, with_sync=False
):
    """A function running one Adam step on a batch and returning the (pre-update) loss.

    `fused`: dense layers as `fused_dense` ops (like torch's nn.Linear) or as matmul + add +
    relu.  With `with_sync`, returns (step, sync) where sync waits for the device.
    """
    import training.graph as ts

    graph = ts.Graph()
    with graph.as_default():
        users = ts.placeholder(ts.int32, [None], name="user_idx")
        items = ts.placeholder(ts.int32, [None], name="item_idx")
        labels = ts.placeholder(ts.float32, [None, 1], name="label")
        user_table = ts.Variable(weights["user_embedding"], name="user_embedding")
        item_table = ts.Variable(weights["item_embedding"], name="item_embedding")
        hidden = ts.concat(
            [ts.embedding_lookup(user_table, users), ts.embedding_lookup(item_table, items)], axis=1
        )
        for layer in range(len(HIDDEN_UNITS)):
            kernel = ts.Variable(weights[f"dense{layer}/kernel"], name=f"dense{layer}/kernel")
            bias = ts.Variable(weights[f"dense{layer}/bias"], name=f"dense{layer}/bias")
            activation = "relu" if layer < len(HIDDEN_UNITS) - 1 else "linear"
            if fused:
                hidden = ts.fused_dense(hidden, kernel, bias, activation=activation)
            else:
                hidden = ts.matmul(hidden, kernel) + bias
                hidden = ts.relu(hidden) if activation == "relu" else hidden
        loss = ts.reduce_mean(ts.sigmoid_cross_entropy_with_logits(labels=labels, logits=hidden))
        train_op = ts.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
    session = ts.Session(graph, device=device)
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
