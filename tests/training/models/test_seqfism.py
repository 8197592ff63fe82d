"""seqfism: scores against a numpy oracle of its formula, windows by hand, finite differences.

The history is an input: serving feeds each user's newest items, training the windows around
each row's place (`ModelGraph.feed_batch`), both cut here from the events below.
"""

import numpy as np
import pytest

from tests.training.models.finite_differences import assert_loss_gradients_match, session_in
from training.data import Batch, UserHistory
from training.models import BuildContext, build_model

# (user, item, time): user 0 watched 1 and 2 at the same second (tie: larger item is newer),
# then 4, then 5, and 4 again later (a repeat keeps its newest time); user 1 watched 3;
# user 2 nothing.
EVENTS = [(0, 1, 10), (0, 2, 10), (0, 4, 20), (0, 5, 30), (1, 3, 5), (0, 4, 40)]
HIST_USERS = np.array([e[0] for e in EVENTS], np.int32)
HIST_ITEMS = np.array([e[1] for e in EVENTS], np.int32)
HIST_TS = np.array([e[2] for e in EVENTS], np.int64) * 1_000_000_000  # nanoseconds
# newest first: user 0 -> 4, 5, 2, 1; user 1 -> 3
NEWEST_FIRST = {0: [4, 5, 2, 1], 1: [3], 2: []}
LENGTH = 3  # the history input's width (L): user 0's oldest item is beyond it

USERS = np.array([0, 0, 0, 0, 1, 2, 1], np.int32)
ITEMS = np.array([2, 3, 4, 1, 3, 0, 5], np.int32)  # (0, 2), (0, 4), (0, 1), (1, 3) in history
LABELS = np.array([1, 0, 1, 1, 1, 0, 0], np.float32)
PARAMS = {"factors": 3, "alpha": 0.5, "window": 2, "long_decay": 0.8, "seq_decay": 0.6,
          "seq_length": 2}  # fmt: skip


def _model(dtype=np.float32, params=PARAMS):
    model = build_model("seqfism", params, BuildContext(3, 6, history_length=LENGTH), 0.05, 4)
    sess = session_in(model, dtype)
    latest = UserHistory.from_events(HIST_USERS, HIST_ITEMS, HIST_TS, 3, LENGTH)
    model.load_history(latest, UserHistory.from_events(HIST_USERS, HIST_ITEMS, HIST_TS, 3))
    return model, sess


def _oracle_logit(v, u, i, params, anchor=None):
    """The docstring's formula, item by item, from the newest-first history lists.

    With `anchor` (training) the context is the one around the anchor's place in the whole
    history; without (serving) the scored item sits after the newest item. The scored item
    itself is never in its window.
    """
    seq = NEWEST_FIRST[u]
    # An item outside the history sits just after the latest one (index -1).
    at = seq.index(anchor) if anchor in seq else -1
    long_vec, total = np.zeros(params["factors"]), 0.0
    for d in range(-params["window"], params["window"] + 1):
        if d != 0 and 0 <= at + d < len(seq) and seq[at + d] != i:
            w = params["long_decay"] ** (abs(d) - 1)
            long_vec += w * v["seqfism/history_item"][seq[at + d]]
            total += w
    if total:
        long_vec /= total ** params["alpha"]
    seq_vec = np.zeros(params["factors"])
    for d in range(1, params["seq_length"] + 1):
        if 0 <= at + d < len(seq) and seq[at + d] != i:
            seq_vec += params["seq_decay"] ** (d - 1) * v["seqfism/previous_item"][seq[at + d]]
    user_vec = v["seqfism/user"][u] + long_vec + seq_vec
    return user_vec @ v["seqfism/item"][i] + v["seqfism/item_bias"][i, 0]


def _values(model, sess):
    return {var.name: sess.get_value(var) for var in model.graph.variables}


def test_serving_scores_match_the_formula_and_never_use_the_scored_item():
    model, sess = _model()
    v = _values(model, sess)
    want = [_oracle_logit(v, u, i, PARAMS) for u, i in zip(USERS, ITEMS, strict=True)]
    got = sess.run(model.logits, model.feed(USERS, ITEMS))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_a_candidate_is_scored_from_the_latest_items_by_hand():
    # Candidate 3 for user 0 (not in the history): long-term window = latest 2 items (4, 5)
    # with weights 1, 0.8, normalised by 1.8^0.5; transitions = 4 (1) and 5 (0.6).
    model, sess = _model(np.float64)
    v = _values(model, sess)
    y, z = v["seqfism/history_item"], v["seqfism/previous_item"]
    user_vec = v["seqfism/user"][0] + (y[4] + 0.8 * y[5]) / np.sqrt(1.8) + z[4] + 0.6 * z[5]
    want = user_vec @ v["seqfism/item"][3] + v["seqfism/item_bias"][3, 0]
    got = sess.run(model.logits, model.feed(np.array([0]), np.array([3])))
    np.testing.assert_allclose(got, [want], rtol=1e-6)  # float32 decay weights


def test_a_seen_candidate_reads_the_latest_items_but_itself_by_hand():
    # Item 4 is user 0's newest: its windows are the latest items with 4 left out, each of the
    # others keeping its own weight: long-term 0.8 y5 / 0.8^0.5, transition 0.6 z5.
    model, sess = _model(np.float64)
    v = _values(model, sess)
    y, z = v["seqfism/history_item"], v["seqfism/previous_item"]
    user_vec = v["seqfism/user"][0] + 0.8 * y[5] / np.sqrt(0.8) + 0.6 * z[5]
    want = user_vec @ v["seqfism/item"][4] + v["seqfism/item_bias"][4, 0]
    got = sess.run(model.logits, model.feed(np.array([0]), np.array([4])))
    np.testing.assert_allclose(got, [want], rtol=1e-6)


def test_an_empty_history_scores_from_the_user_and_bias_alone():
    model, sess = _model(np.float64)
    v = _values(model, sess)
    items = np.array([1, 3, 5])
    want = v["seqfism/user"][2] @ v["seqfism/item"][items].T + v["seqfism/item_bias"][items, 0]
    got = sess.run(model.logits, model.feed(np.full(3, 2), items))
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_one_history_row_broadcasts_against_every_candidate():
    model, sess = _model()
    items = np.arange(6)
    tiled = sess.run(model.logits, model.feed(np.zeros(6, np.int32), items))
    once = model.feed(np.zeros(6, np.int32), items, history=model.history_rows(np.array([0])))
    assert once[model.history].shape == (1, LENGTH)
    np.testing.assert_allclose(sess.run(model.logits, once), tiled, rtol=1e-6)


def test_gradients_with_a_history_match_finite_differences():
    model, sess = _model(np.float64)
    assert_loss_gradients_match(model, sess, model.feed(USERS, ITEMS, LABELS))


# Training rows: user 0's positives 2 and 5 with negatives 3 and 0 drawn for them; user 1's
# positive 3 with negative 5. A negative's anchor is its positive. Positive 2 sits beyond the
# newest LENGTH items' reach of its newer side: its windows come from the whole history.
BATCH = Batch(
    users=np.array([0, 0, 0, 0, 1, 1], np.int32),
    items=np.array([2, 3, 5, 0, 3, 5], np.int32),
    labels=np.array([1, 0, 1, 0, 1, 0], np.float32),
    anchors=np.array([2, 2, 5, 5, 3, 3], np.int32),
)


def test_a_negative_is_scored_in_its_positives_context():
    model, sess = _model(np.float64)
    v = _values(model, sess)
    want = [
        _oracle_logit(v, u, i, PARAMS, anchor=a)
        for u, i, a in zip(BATCH.users, BATCH.items, BATCH.anchors, strict=True)
    ]
    got = sess.run(model.logits, model.feed_batch(BATCH))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Without anchors (serving), negative 3 of user 0 reads the latest items instead.
    latest = sess.run(model.logits, model.feed(BATCH.users[1:2], BATCH.items[1:2]))
    np.testing.assert_allclose(latest, [_oracle_logit(v, 0, 3, PARAMS)], rtol=1e-6)
    assert not np.isclose(latest[0], want[1])


def test_training_windows_by_hand():
    # Positive 2 of user 0 (history 4, 5, 2, 1): older side [1, 0, 0], newer side [5, 4].
    model, _ = _model()
    feed = model.feed_batch(BATCH)
    np.testing.assert_array_equal(feed[model.history][0], [1, 0, 0])
    np.testing.assert_array_equal(feed[model.history_after][0], [5, 4])


def test_gradients_with_anchors_match_finite_differences():
    model, sess = _model(np.float64)
    assert_loss_gradients_match(model, sess, model.feed_batch(BATCH))


def test_negatives_out_of_context_ignore_anchors():
    params = {**PARAMS, "negatives_in_context": False}
    model, sess = _model(np.float64, params)
    v = _values(model, sess)
    want = [
        _oracle_logit(v, u, i, params, anchor=i)
        for u, i in zip(BATCH.users, BATCH.items, strict=True)
    ]
    np.testing.assert_allclose(sess.run(model.logits, model.feed_batch(BATCH)), want, rtol=1e-6)


def test_training_without_the_sequences_is_refused():
    model = build_model("seqfism", PARAMS, BuildContext(3, 6, history_length=3), 0.0, 0)
    model.load_history(UserHistory.from_events(HIST_USERS, HIST_ITEMS, HIST_TS, 3, 3))
    with pytest.raises(ValueError, match="load_history needs the sequences"):
        model.feed_batch(BATCH)


def test_a_window_wider_than_the_history_input_is_refused():
    with pytest.raises(ValueError, match="window 2 / seq_length 2: above the history input's 1"):
        build_model("seqfism", PARAMS, BuildContext(3, 6, history_length=1), l2=0.0, seed=0)


@pytest.mark.parametrize(
    "bad", [{"long_decay": 0.0}, {"seq_decay": 1.5}, {"window": 0}, {"seq_length": -1}]
)
def test_bad_params_are_named(bad):
    key = next(iter(bad))
    with pytest.raises(ValueError, match=f"model.params.{key}"):
        build_model("seqfism", {**PARAMS, **bad}, BuildContext(3, 6), l2=0.0, seed=0)
