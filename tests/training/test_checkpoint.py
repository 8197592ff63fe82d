"""Checkpoints restore every optimizer's state, including optimizers that keep none (SGD)."""

import numpy as np
import pytest

from peppercorn.config import TrainingConfig
from training import checkpoint as ckpt
from training.data import open_dataset
from training.data.synthetic import write_synthetic_dataset
from training.trainer import Trainer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    write_synthetic_dataset(root, users=30, items=40, per_user=8, eval_negatives=20)
    return open_dataset(str(root))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adagrad", "ftrl"])
def test_resume_matches_an_uninterrupted_run(dataset, tmp_path, optimizer):
    cfg = TrainingConfig(
        optimizer=optimizer, epochs=3, batch_size=64, learning_rate=0.05, seed=3,
        early_stopping_patience=10,
    )  # fmt: skip
    params = {"factors": 4}
    straight = Trainer(dataset, cfg, "gmf", params, tmp_path / "a", progress=False).fit()
    Trainer(dataset, cfg, "gmf", params, tmp_path / "b", progress=False).fit(epochs=1)
    resumed = Trainer(dataset, cfg, "gmf", params, tmp_path / "b", progress=False)
    finished = resumed.fit(resume=True)
    assert [h["loss"] for h in finished.history] == [h["loss"] for h in straight.history]
    for var in straight.model.graph.variables:
        np.testing.assert_array_equal(
            finished.session.get_value(finished.model.graph.get_node(var.name)),
            straight.session.get_value(var),
            err_msg=var.name,
        )


def test_pruning_removes_the_half_written_checkpoints_a_killed_run_left(tmp_path):
    for name in ("epoch-0001", ".epoch-0002.tmp-k3j4h5", "notes"):
        (tmp_path / name).mkdir()
    ckpt.prune_checkpoints(tmp_path, keep={1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "notes"]
