"""A small synthetic features dataset the trainer tests share (one per test module)."""

import pytest

from training.data import open_dataset
from training.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 users, 50 items, 10 positives each, 20 sampled negatives per held-out item."""
    root = tmp_path_factory.mktemp("ds")
    write_synthetic_dataset(root, users=40, items=50, per_user=10, eval_negatives=20)
    return open_dataset(str(root))
