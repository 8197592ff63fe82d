"""bench.chain_quality's core on the trainer tests' small synthetic features, 2 epochs each."""

import pytest

from bench.chain_quality import chain_quality, served
from peppercorn.config import TrainingConfig
from training.data import open_dataset
from training.data.synthetic import write_synthetic_dataset

RANKER = ("neumf", {"factors": 4, "mlp_embedding": 4, "layers": [8, 4]})
TWO_TOWER = {"dim": 8, "id_dim": 8, "layers": [8], "uniform_negatives": 16}
ALL = 50  # every item: retrieving them all must reproduce ranking them all


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_synthetic_dataset(root, users=40, items=ALL, per_user=10, eval_negatives=20)
    training = TrainingConfig(epochs=2, batch_size=32, learning_rate=0.01, seed=1)
    settings = ((200, "export"), (10, "export"), (ALL, "export"), (ALL, "exact"), (10, "hnsw"))
    return chain_quality(
        open_dataset(str(root)), training, RANKER, TWO_TOWER, {"learning_rate": 0.02}, settings
    )


def test_the_record_holds_every_figure(record):
    assert record["users"] > 0 and record["n_items"] == ALL
    models = record["models"]
    assert models["ranker"]["model"] == "neumf" and models["retrieval"]["model"] == "two_tower"
    assert models["retrieval"]["training"]["learning_rate"] == 0.02
    for key in ("full_recall@10", "full_ndcg@10", "full_recall@50", "full_ndcg@50"):
        assert 0.0 <= record["rank_all"][key] <= 1.0
        assert 0.0 <= record["retrieval"][key] <= 1.0
    assert 0.0 <= record["retrieval"]["full_recall@200"] <= 1.0
    assert [(c["n"], c["search"]) for c in record["chain"]][:2] == [(200, "export"), (10, "export")]
    for row in record["chain"]:
        assert 0.0 <= row["retrieval_recall"] <= 1.0 and "gap_recall@50" in row
        # The chain cannot find what retrieval missed.
        assert row["full_recall@10"] <= row["retrieval_recall"] + 1e-12
    assert served(record)["n"] == 200
    assert record["target_met"] == (served(record)["gap_recall@50"] >= -0.03)


def test_rank_all_is_the_trainers_own_full_catalogue_evaluation(record):
    for key, value in record["models"]["ranker"]["trainer_full"].items():
        assert record["rank_all"][key] == value


def test_retrieving_every_item_reproduces_ranking_every_item(record):
    for row in record["chain"]:
        if row["n"] == ALL and row["search"] in ("export", "exact"):
            assert row["retrieval_recall"] == 1.0
            for key, value in record["rank_all"].items():
                assert row[key] == value, (row["search"], key)
            assert row["gap_recall@50"] == 0.0
