"""Every registered model's size is O((users + items) x dimensions), never O(users x items).

Oracle: the shapes themselves, across index-space sizes. Each model is built at (users,
items) = (50, 40), (100, 40) and (50, 80): an axis that changes with users scales with users,
one that changes with items scales with items, and no variable or constant may have both.
"""

import numpy as np
import pytest

from training.data import ProfileTable
from training.models import REGISTRY, BuildContext, build_model

SIZES = [(50, 40), (100, 40), (50, 80)]
SMALL = {"seqfism": {"window": 4, "seq_length": 2}}


def _ctx(n_users: int, n_items: int) -> BuildContext:
    # Profiles as the dataset gives them: one row per user / item index.
    rng = np.random.default_rng(0)
    user = ProfileTable(
        categorical={"segment": rng.integers(0, 3, n_users).astype(np.int32)},
        dense={"activity": rng.random(n_users).astype(np.float32)},
    )
    item = ProfileTable(
        categorical={"genre": rng.integers(0, 4, n_items).astype(np.int32)},
        vector={"mix": rng.random((n_items, 2)).astype(np.float32)},
    )
    feats = ({"name": "segment", "vocab_size": 3}, {"name": "genre", "vocab_size": 4})
    return BuildContext(n_users, n_items, user, item, feats, history_length=8)


def _shapes(name: str, n_users: int, n_items: int) -> dict[str, tuple]:
    model = build_model(name, SMALL.get(name, {}), _ctx(n_users, n_items), l2=0.0, seed=0)
    graph = model.graph
    out = {f"variable {v.name}": tuple(v.shape) for v in graph.variables}
    out.update({f"constant {c.name}": np.shape(c.value) for c in graph.constants})
    return out


def _changed_axes(before: tuple, after: tuple) -> set[int]:
    return {axis for axis, (x, y) in enumerate(zip(before, after, strict=True)) if x != y}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_no_variable_grows_with_users_times_items(name):
    base, more_users, more_items = (_shapes(name, *size) for size in SIZES)
    assert set(base) == set(more_users) == set(more_items)
    for key, shape in base.items():
        by_users = _changed_axes(shape, more_users[key])
        by_items = _changed_axes(shape, more_items[key])
        assert not (by_users and by_items), f"{name}: {key} {shape} scales with users x items"
        # Whatever scales, it is at most linear: doubling users or items at most doubles it.
        size = int(np.prod(shape))
        assert int(np.prod(more_users[key])) <= 2 * size, key
        assert int(np.prod(more_items[key])) <= 2 * size, key


def test_the_largest_model_is_linear_in_users_plus_items():
    # The bound the issue states, for a model that reads histories: sum of variable sizes
    # <= c (users + items) dims at every size, with c = 4 (user, item, history-item embeddings
    # and the item bias, plus small layers).
    for n_users, n_items in SIZES:
        model = build_model("seqfism", {"factors": 8, "window": 4, "seq_length": 2},
                            _ctx(n_users, n_items), l2=0.0, seed=0)  # fmt: skip
        total = sum(int(np.prod(v.shape)) for v in model.graph.variables)
        assert total <= 4 * (n_users + n_items) * 8, (n_users, n_items, total)
