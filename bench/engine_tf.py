"""The TensorFlow side of the engine benchmark: the same NCF-MLP in `tf.compat.v1` graph mode.

Plain TF-1 code (embedding_lookup, matmul + bias, nn.relu, Adam) run by TensorFlow 2.x's
compat.v1 Session, so Grappler optimises the graph as it would for a TF-1 user.  Threads are
capped with the session's ConfigProto (intra-op `threads`, inter-op 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from bench.engine_workload import HIDDEN_UNITS, LEARNING_RATE, Batch

__all__ = ["TF_OPTIMIZER", "tensorflow_version", "tf_trainer"]

TF_OPTIMIZER = "tf.compat.v1.train.AdamOptimizer (TF-1 Adam: every row's moments decay)"


def tensorflow_version() -> str | None:
    """TensorFlow's version, or None when it is not installed."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf.__version__


def tf_trainer(weights: dict[str, np.ndarray], threads: int) -> Callable[[Batch], float]:
    """A function running one Adam step on a batch in a compat.v1 Session; returns the loss."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tfv1 = tf.compat.v1
    graph = tfv1.Graph()
    with graph.as_default():
        users = tfv1.placeholder(tf.int32, [None], name="user_idx")
        items = tfv1.placeholder(tf.int32, [None], name="item_idx")
        labels = tfv1.placeholder(tf.float32, [None, 1], name="label")
        user_table = tfv1.Variable(weights["user_embedding"], name="user_embedding")
        item_table = tfv1.Variable(weights["item_embedding"], name="item_embedding")
        hidden = tfv1.concat(
            [
                tfv1.nn.embedding_lookup(user_table, users),
                tfv1.nn.embedding_lookup(item_table, items),
            ],
            axis=1,
        )
        for layer in range(len(HIDDEN_UNITS)):
            kernel = tfv1.Variable(weights[f"dense{layer}/kernel"], name=f"dense{layer}/kernel")
            bias = tfv1.Variable(weights[f"dense{layer}/bias"], name=f"dense{layer}/bias")
            hidden = tfv1.matmul(hidden, kernel) + bias
            if layer < len(HIDDEN_UNITS) - 1:
                hidden = tfv1.nn.relu(hidden)
        loss = tfv1.reduce_mean(
            tfv1.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=hidden)
        )
        train_op = tfv1.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
        init = tfv1.global_variables_initializer()
    config = tfv1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
    session = tfv1.Session(graph=graph, config=config)
    session.run(init)
    fetches = [loss, train_op]

    def step(batch: Batch) -> float:
        value, _ = session.run(
            fetches, {users: batch.users, items: batch.items, labels: batch.labels}
        )
        return float(value)

    return step
