"""FISM: scores against a numpy oracle of its formula, the history cap, finite differences."""

import numpy as np

from tests.training.models.finite_differences import assert_loss_gradients_match, session_in
from training.data import UserHistory
from training.models import BuildContext, build_model

# user 0 saw items 1, 2, 4, 5 (in that order), user 1 item 3, user 2 nothing.
HIST_USERS = np.array([0, 0, 0, 0, 1], np.int32)
HIST_ITEMS = np.array([1, 2, 4, 5, 3], np.int32)
HIST_TIME = np.array([1, 2, 3, 4, 1])
USERS = np.array([0, 0, 1, 2, 1, 0], np.int32)
ITEMS = np.array([2, 3, 3, 0, 5, 1], np.int32)  # (0, 2) and (1, 3) score an item of the history
LABELS = np.array([1, 0, 1, 0, 0, 1], np.float32)


def _model(dtype=np.float32, length=4):
    ctx = BuildContext(3, 6, history_length=length)
    model = build_model("fism", {"factors": 3, "alpha": 0.5}, ctx, l2=0.05, seed=4)
    sess = session_in(model, dtype)
    model.load_history(UserHistory.from_events(HIST_USERS, HIST_ITEMS, HIST_TIME, 3, length))
    return model, sess


def _oracle(sess, model, histories):
    v = {var.name: sess.get_value(var) for var in model.graph.variables}
    y, p, q = v["fism/history_item"], v["fism/user"], v["fism/item"]
    want = []
    for u, i in zip(USERS, ITEMS, strict=True):
        others = [j for j in histories[u] if j != i]
        norm = len(histories[u]) ** -0.5 if histories[u] else 0.0
        user_vec = p[u] + norm * y[others].sum(axis=0)
        logit = (user_vec * q[i]) @ v["fism/out/w"][:, 0] + v["fism/out/b"][0]
        want.append(logit + v["fism/item_bias"][i, 0])
    return want


def test_scores_leave_the_scored_item_out_of_the_history():
    model, sess = _model()
    want = _oracle(sess, model, {0: [1, 2, 4, 5], 1: [3], 2: []})
    got = sess.run(model.logits, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_capped_history_is_the_newest_items():
    # L = 2: user 0's history is 5 and 4; item 1 (scored last) is no longer in it.
    model, sess = _model(length=2)
    want = _oracle(sess, model, {0: [5, 4], 1: [3], 2: []})
    got = sess.run(model.logits, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_one_history_row_broadcasts_against_every_candidate():
    model, sess = _model()
    items = np.arange(6)
    tiled = sess.run(model.logits, model.feed(np.zeros(6, np.int32), items))
    once = model.feed(np.zeros(6, np.int32), items, history=model.history_rows(np.array([0])))
    np.testing.assert_allclose(sess.run(model.logits, once), tiled, rtol=1e-6)


def test_gradients_with_a_history_match_finite_differences():
    model, sess = _model(np.float64)
    assert_loss_gradients_match(model, sess, model.feed(USERS, ITEMS, LABELS))
