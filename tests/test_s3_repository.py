"""A model repository on an S3-compatible server (moto's standalone server, a real HTTP
endpoint): `make train` exports to it, the server serves from it, and batch scoring reads it,
each as a user runs it (`python -m pipeline ...` in its own process for the server and the
batch job, whose Spark workers inherit the endpoint variables)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.cli import main
from tests.processes import free_port, wait_ready
from training.data.synthetic import write_synthetic_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-10-31"


def test_export_serve_and_batch_score_from_s3(s3_server, s3_uri, tmp_path):
    from engine.saved import load
    from peppercorn.model_repository import ModelRepository

    write_synthetic_dataset(tmp_path / "data" / "tiny", users=30, items=40, per_user=8,
                            eval_negatives=10)  # fmt: skip
    port = free_port()
    repository = f"{s3_uri}/models"
    config = tmp_path / "s3.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": {"kind": "synthetic", "name": "tiny"},
        "paths": {"data_root": str(tmp_path / "data"), "model_repository": repository},
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "1g"},
        "model": {"name": "gmf", "params": {"factors": 8}},
        "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.02},
        "serving": {"port": port, "poll_interval_s": 0.5},
        "batch": {"k": 4, "output": str(tmp_path / "top")},
    }))  # fmt: skip

    # Export: into the bucket, nothing local.
    assert main(["train", "--config", str(config)]) == 0
    assert not (tmp_path / "models").exists()
    exported = ModelRepository(repository).version("gmf")
    assert exported.version == 1
    # The oracle: the version's files copied out of the bucket, read by the engine alone.
    local = load(exported.download(tmp_path / "copy"))
    user_ids = json.loads(local.assets["vocab/user_id.json"])["tokens"]
    item_ids = json.loads(local.assets["vocab/item_id.json"])["tokens"]
    with np.load(io.BytesIO(local.assets["seen.npz"]), allow_pickle=False) as npz:
        indptr, indices = npz["indptr"], npz["indices"]

    def oracle(user: int, items: list[int]) -> np.ndarray:
        inputs = {"user_idx": np.full(len(items), user, np.int32), "item_idx": np.array(items)}
        return local.predict("serving_default", inputs)["score"]

    # Serve: from the bucket.
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--config", str(config)], cwd=ROOT,
        env=s3_server.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, server)
        body = {"user_id": user_ids[3], "item_ids": item_ids[1:6]}
        r = httpx.post(f"{base}/predict", json=body, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1
        np.testing.assert_allclose(r.json()["scores"], oracle(3, [1, 2, 3, 4, 5]), rtol=1e-5)
        status = httpx.get(f"{base}/v1/models/gmf", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        server.terminate()
        server.wait(timeout=30)

    # Batch: the Spark job's executors read the version from the bucket.
    batch = subprocess.run(
        [sys.executable, "-m", "pipeline", "batch", "--config", str(config), "--dt", DAY],
        cwd=ROOT, env=s3_server.child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr[-3000:]
    top = pd.read_parquet(tmp_path / "top" / f"dt={DAY}")
    assert len(top) == 30 * 4 and set(top["version"]) == {1}
    user = user_ids[3]
    mine = top[top["user_id"] == user].sort_values("rank")
    seen = set(indices[indptr[3] : indptr[4]].tolist())
    pool = [i for i in range(1, len(item_ids)) if i not in seen]
    scores = oracle(3, pool)
    best = [pool[i] for i in np.argsort(-scores, kind="stable")[:4]]
    assert mine["item_id"].tolist() == [item_ids[i] for i in best]
