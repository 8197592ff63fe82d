"""A saved model version whose scores are a table given by hand: an oracle for code that reads
exports (raw-file checks, the daily gate's rescoring)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import engine as tf
from engine.saved import save

__all__ = ["table_version"]


def table_version(path: Path, table, users: list[str], items: list[str]) -> Path:
    """Save at `path` a version scoring (user_idx, item_idx) as table[user_idx, item_idx], with
    `users`/`items` as its vocabularies' tokens (index 0 first, the unknown id)."""
    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder(np.int32, shape=(None,), name="user_idx")
        item_idx = tf.placeholder(np.int32, shape=(None,), name="item_idx")
        scores = tf.Variable(np.asarray(table, np.float32), name="scores")
        flat = tf.add(tf.multiply(user_idx, len(items)), item_idx)
        score = tf.gather(tf.reshape(scores, [-1]), flat, name="score")
    session = tf.Session(graph)
    session.initialize_variables()
    assets = {
        f"vocab/{name}.json": json.dumps({"tokens": tokens}).encode()
        for name, tokens in (("user_id", users), ("item_id", items))
    }
    inputs = {"user_idx": user_idx, "item_idx": item_idx}
    signatures = {"serving_default": {"inputs": inputs, "outputs": {"score": score}}}
    return save(path, session, signatures, assets=assets)
