"""TF-1 programs shared by several parity tests: NCF/NeuMF on embedding tables.

Each builder takes the module `tf` (engine or tensorflow.compat.v1) and is plain TF-1 code;
data and initial weights are numpy, seeded, made once at import.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tests.parity.harness import STEPS, Model

__all__ = [
    "NCF_BATCH",
    "NCF_DIM",
    "NCF_ITEMS",
    "NCF_USERS",
    "OPTIMIZERS",
    "build_ncf",
    "ncf_feed",
    "weights",
]

NCF_USERS, NCF_ITEMS, NCF_DIM, NCF_BATCH = 50, 40, 8, 32

# One optimizer per id, in TF-1 spelling; hyper-parameters off their defaults where TF-1 has
# them, so a wrong default or a swapped argument shows.
OPTIMIZERS: dict[str, Callable] = {
    "GradientDescent": lambda tf: tf.train.GradientDescentOptimizer(0.5),
    "Momentum": lambda tf: tf.train.MomentumOptimizer(0.1, 0.9),
    "Momentum-nesterov": lambda tf: tf.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
    "Adagrad": lambda tf: tf.train.AdagradOptimizer(0.1),
    "Adam": lambda tf: tf.train.AdamOptimizer(0.01),
    "RMSProp": lambda tf: tf.train.RMSPropOptimizer(0.01),
    "RMSProp-momentum": lambda tf: tf.train.RMSPropOptimizer(0.01, decay=0.8, momentum=0.5),
    "Ftrl": lambda tf: tf.train.FtrlOptimizer(
        0.1, l1_regularization_strength=0.001, l2_regularization_strength=0.001
    ),
}


def weights(seed: int, **shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Seeded float32 initial weights, one per keyword (scaled like Glorot)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        scale = np.sqrt(2.0 / sum(shape)) if len(shape) > 1 else 0.1
        out[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


_NCF_RNG = np.random.default_rng(1818)
NCF_DATA = {
    "users": _NCF_RNG.integers(0, NCF_USERS, (STEPS, NCF_BATCH)).astype(np.int32),
    # Items from the first half of the catalogue only: the other rows never get a gradient
    # and must stay put; rows seen earlier but absent from a batch must move under TF-1 Adam
    # and a densified gradient, and stay under Momentum/Adagrad/FTRL's sparse updates.
    "items": _NCF_RNG.integers(0, NCF_ITEMS // 2, (STEPS, NCF_BATCH)).astype(np.int32),
    "labels": _NCF_RNG.integers(0, 2, (STEPS, NCF_BATCH, 1)).astype(np.float32),
}
NCF_INIT = weights(
    7,
    user_gmf=(NCF_USERS, NCF_DIM),
    item_gmf=(NCF_ITEMS, NCF_DIM),
    user_mlp=(NCF_USERS, NCF_DIM),
    item_mlp=(NCF_ITEMS, NCF_DIM),
    w1=(2 * NCF_DIM, 16),
    b1=(16,),
    w2=(16, NCF_DIM),
    b2=(NCF_DIM,),
    w_out=(2 * NCF_DIM, 1),
    b_out=(1,),
)


def ncf_feed(placeholders, step: int) -> dict:
    """Step `step`'s batch for the (users, items, labels) placeholders."""
    users, items, labels = placeholders
    return {
        users: NCF_DATA["users"][step % STEPS],
        items: NCF_DATA["items"][step % STEPS],
        labels: NCF_DATA["labels"][step % STEPS],
    }


def build_ncf(tf, make_optimizer: Callable, transform: Callable | None = None) -> Model:
    """NeuMF: GMF (product of embeddings) and an MLP over concatenated embeddings, joined.

    `transform(tf, grads_and_vars) -> grads_and_vars` runs between compute_gradients and
    apply_gradients when given (gradient clipping); else `minimize`.
    """
    users = tf.placeholder(tf.int32, [None], name="users")
    items = tf.placeholder(tf.int32, [None], name="items")
    labels = tf.placeholder(tf.float32, [None, 1], name="labels")
    v = {name: tf.Variable(value, name=name) for name, value in NCF_INIT.items()}
    gmf = tf.nn.embedding_lookup(v["user_gmf"], users) * tf.nn.embedding_lookup(
        v["item_gmf"], items
    )
    user_mlp = tf.nn.embedding_lookup(v["user_mlp"], users)
    item_mlp = tf.nn.embedding_lookup(v["item_mlp"], items)
    mlp_in = tf.concat([user_mlp, item_mlp], axis=1)
    h1 = tf.nn.relu(tf.matmul(mlp_in, v["w1"]) + v["b1"])
    h2 = tf.nn.relu(tf.matmul(h1, v["w2"]) + v["b2"])
    logits = tf.matmul(tf.concat([gmf, h2], axis=1), v["w_out"]) + v["b_out"]
    loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    optimizer = make_optimizer(tf)
    watched = {
        "user_gmf": tf.gradients(loss, v["user_gmf"])[0],
        "item_mlp": tf.gradients(loss, v["item_mlp"])[0],
        "w1": tf.gradients(loss, v["w1"])[0],
    }
    if transform is None:
        train_op = optimizer.minimize(loss)
    else:
        grads_and_vars = transform(tf, optimizer.compute_gradients(loss))
        grads_and_vars = list(grads_and_vars)
        # Keyed by position: TF names a variable "w1:0", the engine "w1".
        watched.update({f"applied #{i}": g for i, (g, _) in enumerate(grads_and_vars)})
        train_op = optimizer.apply_gradients(grads_and_vars)
    placeholders = (users, items, labels)
    return Model(loss, train_op, v, lambda step: ncf_feed(placeholders, step), watched)
