"""A tmp model repository with small models built and saved by the real graph engine, plus
the numpy oracle of what each model scores (sigmoid of user·item embeddings)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from serving.settings import Settings


@dataclass
class BuiltModel:
    """What a test knows about a saved version independently of the server."""

    path: Path
    user_emb: np.ndarray
    item_emb: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    seen: dict[int, list[int]]
    popular: list[int]
    counts: list[int]

    def score(self, user_idx: int, item_idx) -> np.ndarray:
        logits = self.item_emb[np.asarray(item_idx)] @ self.user_emb[user_idx]
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def build_version(
    repo: Path,
    name: str = "neumf",
    version: int = 1,
    seed: int = 0,
    n_users: int = 20,
    n_items: int = 30,
    dim: int = 4,
    item_id_type: str = "int",
    drop_assets: tuple[str, ...] = (),
    nan_users: tuple[int, ...] = (),
) -> BuiltModel:
    """Save a dot-product model (placeholders user_idx/item_idx -> score) with §4 assets;
    the embedding rows of `nan_users` are NaN (a version that must be refused)."""
    import engine as tf
    from engine.saved import save

    rng = np.random.default_rng(seed)
    user_emb = rng.normal(0, 1, (n_users + 1, dim)).astype(np.float32)
    item_emb = rng.normal(0, 1, (n_items + 1, dim)).astype(np.float32)
    user_emb[list(nan_users)] = np.nan
    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder("int32", [None], name="user_idx")
        item_idx = tf.placeholder("int32", [None], name="item_idx")
        users = tf.Variable(user_emb, name="user_embedding")
        items = tf.Variable(item_emb, name="item_embedding")
        dot = tf.reduce_sum(
            tf.multiply(tf.embedding_lookup(users, user_idx), tf.embedding_lookup(items, item_idx)),
            axis=1,
        )
        score = tf.sigmoid(dot, name="score")
        session = tf.Session(graph)
        session.initialize_variables()
    user_ids = [f"u{i:03d}" for i in range(1, n_users + 1)]
    item_ids = (
        [str(10 * i) for i in range(1, n_items + 1)]
        if item_id_type == "int"
        else [f"r{i:03d}" for i in range(1, n_items + 1)]
    )
    seen = {
        u: sorted(rng.choice(np.arange(1, n_items + 1), 3, replace=False).tolist())
        for u in range(1, n_users + 1)
    }
    popular = list(range(n_items, 0, -1))[:10]
    counts = list(range(100, 90, -1))[: len(popular)]
    indptr = np.zeros(n_users + 2, dtype=np.int64)
    for u in range(1, n_users + 1):
        indptr[u + 1] = indptr[u] + len(seen[u])
    indices = np.concatenate([np.asarray(seen[u], dtype=np.int32) for u in range(1, n_users + 1)])
    seen_buf = io.BytesIO()
    np.savez(seen_buf, indptr=indptr, indices=indices)

    def vocab(feature: str, tokens: list[str], id_type: str) -> bytes:
        body = {
            "name": feature,
            "min_frequency": 1,
            "id_type": id_type,
            "tokens": ["<unk>", *tokens],
        }
        return json.dumps(body).encode()

    assets = {
        "vocab/user_id.json": vocab("user_id", user_ids, "string"),
        "vocab/item_id.json": vocab("item_id", item_ids, item_id_type),
        "popular_items.json": json.dumps({"item_idx": popular, "count": counts}).encode(),
        "seen.npz": seen_buf.getvalue(),
        "metrics.json": json.dumps({"hr@10": 0.5, "ndcg@10": 0.3}).encode(),
        "feature_spec.json": json.dumps({"model": name, "params": {"dim": dim}}).encode(),
    }
    for asset in drop_assets:
        del assets[asset]
    path = repo / name / str(version)
    signatures = {
        "serving_default": {
            "inputs": {"user_idx": user_idx, "item_idx": item_idx},
            "outputs": {"score": score},
        }
    }
    save(path, session, signatures, assets=assets)
    return BuiltModel(path, user_emb, item_emb, user_ids, item_ids, seen, popular, counts)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def make_settings(repo: Path, **kw) -> Settings:
    return Settings.model_validate({"model_repository": str(repo), "poll_interval_s": 0.2, **kw})


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value; fail the test on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture
def served(repo: Path):
    """A running app (TestClient) serving model `neumf` version 1, and its oracle."""
    from fastapi.testclient import TestClient

    from serving.main import create_app

    built = build_version(repo, "neumf", 1, seed=1)
    app = create_app(make_settings(repo, max_instances=50, max_body_bytes=20_000))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client, built


def train_grouped(root: Path, runs: dict) -> tuple[Path, dict]:
    """Train and export each `name: (TrainingConfig, params)` on a grouped synthetic dataset
    with item content (120 users, 80 items, 4 taste groups) under `root`: the repository and
    each user index's group."""
    import pyarrow.parquet as pq

    from training.data import open_dataset
    from training.data.synthetic import write_synthetic_dataset
    from training.export import export_model
    from training.trainer import Trainer

    write_synthetic_dataset(root, users=120, items=80, groups=4, per_user=12, item_content=True,
                            seed=3)  # fmt: skip
    dataset = open_dataset(str(root))
    for name, (cfg, params) in runs.items():
        trainer = Trainer(dataset, cfg, name, params, root / f"ck-{name}", progress=False)
        export_model(trainer.fit(), dataset, trainer.seen, root / "models", name, None)
    profile = pq.read_table(root / "features" / "user_profile").to_pandas()
    return root / "models", dict(zip(profile.user_idx, profile.segment_idx - 1, strict=True))
