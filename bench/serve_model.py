"""An ML-100K-shaped NeuMF-like model (943 users, 1682 items; GMF dim 8 + MLP 64-32-16-8,
random weights) exported with the §4 assets, for when no trained export exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peppercorn.model_repository import ExportedVersion, ModelRepository
from peppercorn.version_assets import VersionContents

__all__ = ["build_ml100k_shaped"]


def build_ml100k_shaped(
    repo: Path, name: str = "neumf", n_users: int = 943, n_items: int = 1682, seed: int = 0
) -> ExportedVersion:
    """Export the model as the next version of `name` in the repository at `repo`."""
    import engine as tf

    rng = np.random.default_rng(seed)

    def table(rows: int, dim: int) -> np.ndarray:
        return rng.normal(0, 0.1, (rows, dim)).astype(np.float32)

    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder("int32", [None], name="user_idx")
        item_idx = tf.placeholder("int32", [None], name="item_idx")
        gmf = tf.multiply(
            tf.embedding_lookup(tf.Variable(table(n_users + 1, 8)), user_idx),
            tf.embedding_lookup(tf.Variable(table(n_items + 1, 8)), item_idx),
        )
        x = tf.concat(
            [
                tf.embedding_lookup(tf.Variable(table(n_users + 1, 32)), user_idx),
                tf.embedding_lookup(tf.Variable(table(n_items + 1, 32)), item_idx),
            ],
            axis=1,
        )
        for fan_in, fan_out in ((64, 32), (32, 16), (16, 8)):
            x = tf.fused_dense(
                x,
                tf.Variable(table(fan_in, fan_out)),
                tf.Variable(np.zeros(fan_out, np.float32)),
                activation="relu",
            )
        logit = tf.fused_dense(
            tf.concat([gmf, x], axis=1),
            tf.Variable(table(16, 1)),
            tf.Variable(np.zeros(1, np.float32)),
        )
        score = tf.sigmoid(tf.reshape(logit, [-1]), name="score")
        session = tf.Session(graph)
        session.initialize_variables()
    seen_idx = [
        np.sort(rng.choice(np.arange(1, n_items + 1), 100, replace=False)) for _ in range(n_users)
    ]

    def vocab(feature: str, n: int) -> dict:
        tokens = ["<unk>", *(str(i) for i in range(1, n + 1))]
        return {"name": feature, "min_frequency": 1, "id_type": "int", "tokens": tokens}

    contents = VersionContents(
        vocabs={"user_id": vocab("user_id", n_users), "item_id": vocab("item_id", n_items)},
        popular_idx=np.arange(1, 1001),
        popular_count=np.arange(2000, 1000, -1),
        seen_indptr=np.concatenate([[0, 0], np.cumsum([len(s) for s in seen_idx])]),
        seen_indices=np.concatenate(seen_idx),
        feature_spec={"model": name, "params": {"synthetic": True}},
    )
    signatures = {
        "serving_default": {
            "inputs": {"user_idx": user_idx, "item_idx": item_idx},
            "outputs": {"score": score},
        }
    }
    return ModelRepository(str(repo)).export(name, session, signatures, contents)
