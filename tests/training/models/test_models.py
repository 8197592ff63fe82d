"""Models: forward passes against numpy oracles, gradients against finite differences."""

import numpy as np
import pytest

import engine as tf
from tests.training.models.finite_differences import assert_loss_gradients_match, session_in
from training.data import ProfileTable
from training.data.in_batch import InBatchSampler
from training.models import REGISTRY, BuildContext, build_model, resolve_params


def _ctx():
    rng = np.random.default_rng(0)
    user = ProfileTable(
        categorical={"segment": rng.integers(0, 3, 6).astype(np.int32)},
        dense={"activity": rng.random(6).astype(np.float32)},
    )
    item = ProfileTable(
        categorical={"genre": rng.integers(0, 4, 9).astype(np.int32)},
        vector={"mix": rng.random((9, 2)).astype(np.float32)},
    )
    feats = ({"name": "segment", "vocab_size": 3}, {"name": "genre", "vocab_size": 4})
    return BuildContext(6, 9, user, item, feats)


def _values(session, graph):
    return {v.name: session.get_value(v) for v in graph.variables}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


USERS = np.array([1, 2, 5, 0, 3], np.int32)
ITEMS = np.array([4, 8, 1, 2, 2], np.int32)
LABELS = np.array([1, 0, 1, 0, 0], np.float32)


def test_gmf_scores_match_numpy():
    model = build_model("gmf", {"factors": 3}, _ctx(), l2=0.0, seed=1)
    sess = tf.Session(model.graph)
    sess.initialize_variables()
    v = _values(sess, model.graph)
    logit = (v["gmf/user"][USERS] * v["gmf/item"][ITEMS]) @ v["gmf/out/w"][:, 0] + v["gmf/out/b"]
    got = sess.run(model.score, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got, _sigmoid(logit), rtol=1e-5)


def test_deepfm_second_order_term_matches_pairwise_sum():
    ctx = _ctx()
    model = build_model("deepfm", {"embedding": 3, "layers": [4]}, ctx, l2=0.0, seed=2)
    sess = tf.Session(model.graph)
    sess.initialize_variables()
    v = _values(sess, model.graph)
    fields = [
        v["ranker/user_id"][USERS],
        v["ranker/item_id"][ITEMS],
        v["ranker/user/segment"][ctx.user_profile.categorical["segment"][USERS]],
        v["ranker/item/genre"][ctx.item_profile.categorical["genre"][ITEMS]],
    ]
    pairwise = sum((fields[a] * fields[b]).sum(axis=1) for a in range(4) for b in range(a + 1, 4))
    deep_graph = build_model("ranker", {"embedding": 3, "layers": [4]}, ctx, l2=0.0, seed=2)
    deep_sess = tf.Session(deep_graph.graph)
    deep_sess.initialize_variables()
    # Same seed, same variables in the same order: the deep part is identical.
    deep = deep_sess.run(deep_graph.logits, deep_graph.feed(USERS, ITEMS))
    got = sess.run(model.logits, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got - deep, pairwise, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_loss_gradient_matches_finite_differences(name):
    small = {
        "gmf": {"factors": 3, "item_bias": True},
        "mlp": {"mlp_embedding": 2, "layers": [4, 3]},
        "neumf": {"factors": 3, "mlp_embedding": 2, "layers": [4, 3]},
        "fism": {"factors": 3},
        "seqfism": {"factors": 3, "window": 2, "seq_length": 2},
        "two_tower": {"dim": 3, "id_dim": 2, "layers": [4], "uniform_negatives": 3},
    }
    params = small.get(name, {"embedding": 3, "layers": [4]})
    model = build_model(name, params, _ctx(), l2=0.05, seed=3)
    sess = session_in(model, np.float64)
    history = None
    if model.has_history:  # rows 0 and 4 hold their scored item, row 3 is empty
        history = np.zeros((USERS.size, model.history_length), np.int32)
        history[:, :3] = [[2, 4, 7], [1, 0, 0], [8, 2, 4], [0, 0, 0], [2, 3, 5]]
    feed = model.feed(USERS, ITEMS, LABELS, history=history)
    if model.towers is not None:  # the in-batch softmax's candidates, corrections, masks
        sampler = InBatchSampler(np.arange(9), 3, id_dropout=0.5)
        extra = sampler.feed(ITEMS, np.random.default_rng(0))
        towers = model.towers
        feed.update({towers.candidates: extra["candidates"], towers.id_keep: extra["id_keep"]})
        feed.update({towers.correction: extra["correction"], model.softmax_labels: extra["labels"]})
    assert_loss_gradients_match(model, sess, feed, entries=2)


def test_profile_features_are_declared_and_not_trainable():
    model = build_model("wide_deep", {"embedding": 2, "layers": [3]}, _ctx(), l2=0.0, seed=0)
    declared = {i["name"]: i for i in model.inputs}
    assert declared["segment"]["table"] == "user" and declared["mix"]["table"] == "item"
    profile_vars = [v for v in model.graph.variables if v.name.startswith("profile/")]
    assert profile_vars and not any(v.trainable for v in profile_vars)


def test_unknown_model_and_param_are_named():
    with pytest.raises(ValueError, match="unknown model 'bpr'"):
        resolve_params("bpr", {})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\]"):
        resolve_params("mlp", {"depth": 3})
