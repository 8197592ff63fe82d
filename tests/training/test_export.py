"""Export: §4 assets, and atomicity under a polling reader and concurrent exporters."""

import io
import json
import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.saved import load
from peppercorn.config import TrainingConfig
from training.data import open_dataset
from training.data.synthetic import write_synthetic_dataset
from training.export import export_model, popular_items
from training.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_synthetic_dataset(root, users=30, items=40, per_user=8, eval_negatives=10)
    dataset = open_dataset(str(root))
    cfg = TrainingConfig(epochs=1, batch_size=64, learning_rate=0.01, seed=1)
    trainer = Trainer(dataset, cfg, "gmf", {"factors": 4}, root / "ck", progress=False)
    return root, dataset, trainer, trainer.fit()


def test_popular_items_by_hand():
    counts = np.array([9, 2, 0, 5, 2])  # index 0 (unknown) never listed; unseen item 2 dropped
    assert popular_items(counts) == {"item_idx": [3, 1, 4], "count": [5, 2, 2]}
    assert popular_items(counts, limit=1) == {"item_idx": [3], "count": [5]}


def test_assets_follow_the_contract(trained, tmp_path):
    root, dataset, trainer, result = trained
    exported = export_model(result, dataset, trainer.seen, tmp_path, "gmf", None)
    assert (exported.name, exported.version) == ("gmf", 1)
    saved = load(tmp_path / "gmf" / "1")  # the files as written, read by the engine alone
    assets = saved.assets
    assert json.loads(assets["vocab/item_id.json"]) == json.loads(
        (root / "features/vocab/item_id.json").read_text()
    )
    spec = json.loads(assets["feature_spec.json"])
    assert spec["model"] == "gmf" and spec["params"]["factors"] == 4
    assert spec["dataset_checksum"] == dataset.checksum and spec["features"] == dataset.features
    with np.load(io.BytesIO(assets["seen.npz"]), allow_pickle=False) as npz:
        indptr, indices = npz["indptr"], npz["indices"]
    assert indptr.dtype == np.int64 and indices.dtype == np.int32
    assert indptr.size == dataset.n_users + 1
    seen = pq.read_table(root / "features/seen").to_pandas()
    for user in (1, 7, 30):
        want = sorted(seen.item_idx[seen.user_idx == user])
        assert indices[indptr[user] : indptr[user + 1]].tolist() == want
    train = pq.read_table(root / "features/train").to_pandas()
    popular = json.loads(assets["popular_items.json"])
    top = train.item_idx.value_counts()
    assert popular["count"][0] == top.iloc[0]
    assert popular["count"] == sorted(popular["count"], reverse=True)
    assert sum(popular["count"]) == len(train)
    sig = saved.signatures["serving_default"]
    assert set(sig["inputs"]) == {"user_idx", "item_idx"} and set(sig["outputs"]) == {"score"}


def test_polling_reader_never_sees_a_partial_version(trained, tmp_path):
    _, dataset, trainer, result = trained
    repo = tmp_path / "repo"
    stop = threading.Event()
    problems, complete_seen = [], []

    def poll():
        while not stop.is_set():
            model_dir = repo / "gmf"
            if not model_dir.is_dir():
                continue
            for entry in model_dir.iterdir():
                if not entry.name.isdigit():
                    continue
                manifest = entry / "manifest.json"
                try:
                    files = json.loads(manifest.read_text())["files"]
                except (OSError, ValueError) as exc:
                    problems.append(f"{entry.name}: {exc}")
                    continue
                missing = [f for f in files if not (entry / f).is_file()]
                if missing:
                    problems.append(f"{entry.name}: missing {missing}")
                complete_seen.append(entry.name)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        versions = [
            export_model(result, dataset, trainer.seen, repo, "gmf", None) for _ in range(4)
        ]
    finally:
        stop.set()
        reader.join()
    assert [v.version for v in versions] == [1, 2, 3, 4]
    assert not problems, problems[:3]
    assert complete_seen, "the reader never observed a version"
    leftovers = [p.name for p in (repo / "gmf").iterdir() if not p.name.isdigit()]
    assert leftovers == []


def test_concurrent_exports_get_distinct_versions(trained, tmp_path):
    _, dataset, trainer, result = trained
    out: list = []
    errors: list[BaseException] = []

    def one():
        try:
            out.append(export_model(result, dataset, trainer.seen, tmp_path, "gmf", None))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(v.version for v in out) == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "gmf").iterdir()) == ["1", "2", "3"]
