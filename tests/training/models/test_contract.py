"""The model contract knows no model: models describe themselves, history tables included."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine as tf
from training.models import REGISTRY, BuildContext, build_model
from training.models.base import HistoryTables, ModelSpec, register

ROOT = Path(__file__).resolve().parents[3]

# Run in a fresh interpreter: in this one every model module is already imported. A model the
# contract has never heard of registers itself and loads its history through the contract alone;
# then asking the package for its registry must bring in every model.
_FRESH = """
import json, sys
import numpy as np
import engine as tf
from training.models import base

def build(ctx, params, user_idx, item_idx, rng):
    shape = (ctx.n_users, ctx.n_items)
    table = tf.Variable(np.zeros(shape, np.float32), name="toy/history", trainable=False)
    flat = tf.add(tf.multiply(user_idx, ctx.n_items), item_idx)
    return tf.gather(tf.reshape(table, [-1]), flat), [], []

def fill(model, session, users, items, order):
    table = np.zeros(model.variable("toy/history").shape, np.float32)
    table[users, items] = order
    session.set_value(model.variable("toy/history"), table)

history = base.HistoryTables(fill, needs_order=True)
base.register(base.ModelSpec("toy", {}, build, "unknown to the contract", history))
model = base.build_model("toy", {}, base.BuildContext(2, 3), l2=0.0, seed=0)
session = tf.Session(model.graph)
session.initialize_variables()
model.load_history(session, np.array([0, 1]), np.array([2, 0]), np.array([5.0, 7.0]))
scores = session.run(model.logits, model.feed(np.array([0, 1, 1]), np.array([2, 0, 1])))
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
    assert facts["toy_scores"] == [5.0, 7.0, 0.0]
    known = {"fism", "seqfism", "gmf", "mlp", "neumf", "ranker", "wide_deep", "deepfm", "toy"}
    assert set(facts["registry"]) >= known


def _history_spy(name: str, needs_order: bool) -> list:
    """Register a one-variable model whose history filler records what it was given."""
    calls = []

    def build(ctx, params, user_idx, item_idx, rng):
        table = tf.Variable(np.zeros(1, np.float32), name=f"{name}/history", trainable=False)
        return tf.gather(table, tf.multiply(item_idx, 0)), [], []

    def fill(model, session, users, items, order):
        order = None if order is None else order.tolist()
        calls.append((model.spec.name, users.tolist(), items.tolist(), order))

    register(ModelSpec(name, {}, build, "test only", HistoryTables(fill, needs_order)))
    return calls


@pytest.fixture
def scratch_registry():
    """Models registered by a test leave REGISTRY when it ends."""
    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)


@pytest.mark.parametrize("needs_order", [False, True])
def test_load_history_hands_the_spec_its_pairs_and_the_order_only_when_it_asks(
    scratch_registry, needs_order
):
    calls = _history_spy("spy", needs_order)
    model = build_model("spy", {}, BuildContext(2, 3), l2=0.0, seed=0)
    assert model.spec is REGISTRY["spy"]
    assert model.has_history and model.needs_order == needs_order
    order = np.array([3, 4])
    model.load_history(tf.Session(model.graph), np.array([0, 1]), np.array([2, 0]), order)
    assert calls == [("spy", [0, 1], [2, 0], [3, 4] if needs_order else None)]


def test_a_model_without_history_loads_nothing():
    model = build_model("gmf", {"factors": 2}, BuildContext(2, 3), l2=0.0, seed=0)
    assert not model.has_history and not model.needs_order
    model.load_history(tf.Session(model.graph), np.array([0]), np.array([1]))


def test_fism_and_seqfism_describe_their_own_history():
    assert REGISTRY["fism"].history is not None and not REGISTRY["fism"].history.needs_order
    assert REGISTRY["seqfism"].history is not None and REGISTRY["seqfism"].history.needs_order
