"""FISM: history weights by hand, scores against numpy, gradients against finite differences."""

import numpy as np

from tests.training.models.finite_differences import assert_loss_gradients_match, session_in
from training.models import BuildContext, build_model
from training.models.fism import history_weights

# user 0 saw items 1, 2, 4, 5; user 1 saw item 3; user 2 saw nothing
HIST_USERS = np.array([0, 0, 0, 0, 1], np.int32)
HIST_ITEMS = np.array([1, 2, 4, 5, 3], np.int32)
USERS = np.array([0, 0, 1, 2, 1], np.int32)
ITEMS = np.array([2, 3, 3, 0, 5], np.int32)  # (0, 2) and (1, 3) score an item of the history
LABELS = np.array([1, 0, 1, 0, 0], np.float32)


def test_history_weights_by_hand():
    got = history_weights(HIST_USERS, HIST_ITEMS, 3, 6, alpha=0.5)
    want = np.zeros((3, 6), np.float32)
    want[0, [1, 2, 4, 5]] = 0.5  # 4 items: 4 ** -0.5
    want[1, 3] = 1.0
    np.testing.assert_allclose(got, want)


def _model(dtype=np.float32):
    model = build_model("fism", {"factors": 3, "alpha": 0.5}, BuildContext(3, 6), l2=0.05, seed=4)
    sess = session_in(model, dtype)
    model.load_history(sess, HIST_USERS, HIST_ITEMS)
    return model, sess


def test_scores_leave_the_scored_item_out_of_the_history():
    model, sess = _model()
    v = {var.name: sess.get_value(var) for var in model.graph.variables}
    y, p, q = v["fism/history_item"], v["fism/user"], v["fism/item"]
    histories = {0: [1, 2, 4, 5], 1: [3], 2: []}
    want = []
    for u, i in zip(USERS, ITEMS, strict=True):
        others = [j for j in histories[u] if j != i]
        norm = len(histories[u]) ** -0.5 if histories[u] else 0.0
        user_vec = p[u] + norm * y[others].sum(axis=0)
        logit = (user_vec * q[i]) @ v["fism/out/w"][:, 0] + v["fism/out/b"][0]
        want.append(logit + v["fism/item_bias"][i, 0])
    got = sess.run(model.logits, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gradients_with_a_history_match_finite_differences():
    model, sess = _model(np.float64)
    assert_loss_gradients_match(model, sess, model.feed(USERS, ITEMS, LABELS))
