"""The model contract knows no model: models describe themselves, history input included."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine as tf
from training.data import Batch, UserHistory
from training.models import REGISTRY, BuildContext, build_model
from training.models.base import HistoryInput, ModelSpec, history_input, register

ROOT = Path(__file__).resolve().parents[3]

# Run in a fresh interpreter: in this one every model module is already imported. A model the
# contract has never heard of registers itself and reads its history input through the contract
# alone; then asking the package for its registry must bring in every model.
_FRESH = """
import json, sys
import numpy as np
import engine as tf
from training.data import UserHistory
from training.models import base

def build(ctx, params, user_idx, item_idx, rng):
    history = base.history_input(ctx)  # score: the sum of the history's item indices
    summed = tf.reduce_sum(tf.cast(history, np.float32), axis=1)
    return tf.add(summed, tf.multiply(tf.cast(item_idx, np.float32), 0.0)), [], []

base.register(base.ModelSpec("toy", {}, build, "unknown to the contract", base.HistoryInput()))
model = base.build_model("toy", {}, base.BuildContext(3, 4, history_length=2), l2=0.0, seed=0)
session = tf.Session(model.graph)
session.initialize_variables()
users, items, order = np.array([0, 1, 1, 1]), np.array([2, 1, 3, 2]), np.array([1, 1, 2, 3])
model.load_history(UserHistory.from_events(users, items, order, 3, length=2))
scores = session.run(model.logits, model.feed(np.array([0, 1, 2]), np.array([2, 0, 1])))
contract_only = sorted(m for m in sys.modules if m.startswith("training.models."))

import training.models
print(json.dumps({
    "contract_only": contract_only,
    "toy_scores": scores.tolist(),
    "registry": sorted(training.models.REGISTRY),
}))
"""


def test_the_contract_imports_no_model_and_the_package_registers_them_all():
    run = subprocess.run(
        [sys.executable, "-c", _FRESH], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert facts["contract_only"] == ["training.models.base", "training.models.layers"]
    assert facts["toy_scores"] == [2.0, 5.0, 0.0]  # user 1's newest two: 2 and 3
    known = {"fism", "seqfism", "gmf", "mlp", "neumf", "ranker", "wide_deep", "deepfm", "toy"}
    assert set(facts["registry"]) >= known


@pytest.fixture
def scratch_registry():
    """Models registered by a test leave REGISTRY when it ends."""
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


def _newest_only_model(name: str):
    """A model reading each user's newest items (after = 0): its score is the history's sum."""

    def build(ctx, params, user_idx, item_idx, rng):
        summed = tf.reduce_sum(tf.cast(history_input(ctx), np.float32), axis=1)
        return tf.add(summed, tf.multiply(tf.cast(item_idx, np.float32), 0.0)), [], []

    register(ModelSpec(name, {}, build, "test only", HistoryInput()))
    return build_model(name, {}, BuildContext(3, 6, history_length=2), l2=0.0, seed=0)


LATEST = UserHistory.from_events(np.array([1, 1, 1]), np.array([4, 2, 5]), [1, 2, 3], 3, 2)


def test_a_model_reading_the_newest_items_is_fed_them_in_training_and_scoring(
    scratch_registry,
):
    model = _newest_only_model("newest")
    assert model.has_history and not model.needs_order and model.history_length == 2
    model.load_history(LATEST)
    batch = Batch(np.array([1, 2, 1]), np.array([3, 3, 1]), np.ones(3, np.float32), None)
    want = [[5, 2], [0, 0], [5, 2]]  # user 1: 5 then 2 (4 is beyond the cap); user 2: none
    np.testing.assert_array_equal(model.feed_batch(batch)[model.history], want)
    np.testing.assert_array_equal(model.feed(batch.users, batch.items)[model.history], want)
    assert model.inputs[-1] == {"name": "history", "dtype": "int32", "shape": [-1, 2]}


def test_a_model_with_a_history_is_not_fed_before_it_has_one(scratch_registry):
    model = _newest_only_model("unloaded")
    with pytest.raises(ValueError, match="call load_history first or pass the history"):
        model.feed(np.array([1]), np.array([2]))


def test_a_spec_and_its_graph_agree_on_the_history_input(scratch_registry):
    def build(ctx, params, user_idx, item_idx, rng):
        return tf.multiply(tf.cast(item_idx, np.float32), 0.0), [], []

    register(ModelSpec("liar", {}, build, "test only", HistoryInput()))
    with pytest.raises(ValueError, match="only such a spec does"):
        build_model("liar", {}, BuildContext(2, 3), l2=0.0, seed=0)


def test_a_model_without_history_is_fed_none():
    model = build_model("gmf", {"factors": 2}, BuildContext(2, 3), l2=0.0, seed=0)
    assert not model.has_history and not model.needs_order and model.history_length == 0
    model.load_history(LATEST)  # a no-op
    assert model.latest is None
    assert len(model.feed(np.array([0]), np.array([1]))) == 2


def test_fism_and_seqfism_describe_their_own_history():
    fism, seqfism = REGISTRY["fism"].history, REGISTRY["seqfism"].history
    assert fism is not None and fism.after(REGISTRY["fism"].defaults) == 0
    assert seqfism is not None and seqfism.after(REGISTRY["seqfism"].defaults) == 20
    assert seqfism.anchored(REGISTRY["seqfism"].defaults)
