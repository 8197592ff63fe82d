"""A saved model version whose scores are a table given by hand: an oracle for code that reads
exports (raw-file checks, the daily gate's rescoring)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

import engine as tf
from engine.saved import save
from peppercorn.model_repository import ExportedVersion, ModelRepository

__all__ = ["table_version"]


def table_version(
    repository: Path, name: str, version: int, table, users: list[str], items: list[str]
) -> ExportedVersion:
    """Save as `repository/name/version` a version scoring (user_idx, item_idx) as
    table[user_idx, item_idx], with `users`/`items` as its vocabularies' tokens (index 0
    first, the unknown id), no seen items and no popular items."""
    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder(np.int32, shape=(None,), name="user_idx")
        item_idx = tf.placeholder(np.int32, shape=(None,), name="item_idx")
        scores = tf.Variable(np.asarray(table, np.float32), name="scores")
        flat = tf.add(tf.multiply(user_idx, len(items)), item_idx)
        score = tf.gather(tf.reshape(scores, [-1]), flat, name="score")
    session = tf.Session(graph)
    session.initialize_variables()
    seen = io.BytesIO()
    np.savez(seen, indptr=np.zeros(1, np.int64), indices=np.zeros(0, np.int32))
    assets = {
        f"vocab/{vocab}.json": json.dumps({"tokens": tokens}).encode()
        for vocab, tokens in (("user_id", users), ("item_id", items))
    }
    assets["popular_items.json"] = json.dumps({"item_idx": [], "count": []}).encode()
    assets["seen.npz"] = seen.getvalue()
    inputs = {"user_idx": user_idx, "item_idx": item_idx}
    signatures = {"serving_default": {"inputs": inputs, "outputs": {"score": score}}}
    save(repository / name / str(version), session, signatures, assets=assets)
    return ModelRepository(str(repository)).version(name, version)
