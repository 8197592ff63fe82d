"""Fixtures for batch tests: configs rooted in a tmp folder and small saved models."""

from __future__ import annotations

from pathlib import Path

import pytest

from peppercorn.config import Config


def make_config(root: Path, **batch) -> Config:
    """A config whose data root and model repository live under `root`."""
    return Config.model_validate(
        {
            "dataset": {"name": "tiny"},
            "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
            "spark": {"master": "local[2]", "shuffle_partitions": 2},
            "batch": batch,
        }
    )


@pytest.fixture(scope="module")
def dot_model(tmp_path_factory):
    """A dot-product model (serving's test builder) at <root>/models/neumf/1, with its oracle;
    returns (root, built)."""
    from tests.serving.conftest import build_version

    root = tmp_path_factory.mktemp("batch")
    return root, build_version(root / "models", "neumf", 1, seed=3, n_users=25, n_items=40)
