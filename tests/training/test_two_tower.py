"""The two-tower retrieval model: its in-batch softmax feeds, loss and towers against oracles."""

from dataclasses import replace

import numpy as np

import engine as tf
from peppercorn.config import TrainingConfig
from tests.training.models.test_models import _ctx as model_test_ctx
from training.data import ProfileTable
from training.data.in_batch import ACCIDENTAL_HIT, InBatchSampler
from training.models import build_model
from training.trainer import Trainer

PARAMS = {"dim": 4, "id_dim": 3, "layers": [5], "uniform_negatives": 2}


def _ctx():
    # The model tests' users; items with content the item tower reads.
    rng = np.random.default_rng(0)
    item = ProfileTable(
        vector={"category_multi_hot": rng.integers(0, 2, (9, 3)).astype(np.float32)},
        multi_hot={"tag_idx": rng.integers(0, 2, (9, 4)).astype(np.float32)},
    )
    features = (
        {"name": "category_multi_hot", "type": "vector", "table": "item", "vocab": "category"},
        {"name": "tag_idx", "type": "categorical", "table": "item", "vocab": "tag"},
    )
    return replace(model_test_ctx(), item_profile=item, features=features, history_length=3)


def test_the_sampler_corrects_by_expected_counts_and_masks_accidental_hits():
    counts = np.array([0, 1, 3, 0, 4, 2])  # 10 positives; 5 real items
    sampler = InBatchSampler(counts, uniform_negatives=2)
    feed = sampler.feed(np.array([2, 4, 2]), np.random.default_rng(1))
    cands = feed["candidates"]
    assert cands[:3].tolist() == [2, 4, 2] and cands.size == 5
    assert ((cands[3:] >= 1) & (cands[3:] <= 5)).all()
    # E[count of j among candidates] = B * share_j + M / (n_items - 1), by hand for item 2.
    assert np.isclose(feed["correction"][1, 0], -np.log(3 * 0.3 + 2 / 5))
    # Row 0's positive (item 2) sits in column 2 too: an accidental hit, and vice versa.
    assert feed["correction"][0, 2] == ACCIDENTAL_HIT and feed["correction"][2, 0] == ACCIDENTAL_HIT
    assert feed["correction"][0, 0] != ACCIDENTAL_HIT
    for j in range(3, 5):  # a uniform draw equal to a row's positive is masked for that row
        rows = np.flatnonzero(np.array([2, 4, 2]) == cands[j])
        assert (feed["correction"][rows, j] == ACCIDENTAL_HIT).all()
    np.testing.assert_array_equal(feed["labels"], np.eye(3, 5, dtype=np.float32))
    assert feed["id_keep"].shape == (5, 1) and (feed["id_keep"] == 1).all()


def _session(model):
    sess = tf.Session(model.graph)
    sess.initialize_variables()
    return sess


def _softmax_feed(model, users, items, history, rng):
    feed = model.feed(users, items, history=history)
    extra = InBatchSampler(np.ones(9), 2).feed(items, rng)
    t = model.towers
    feed.update({t.candidates: extra["candidates"], t.correction: extra["correction"]})
    feed.update({t.id_keep: extra["id_keep"], model.softmax_labels: extra["labels"]})
    return feed, extra


def test_sampled_logits_are_pair_logits_plus_correction_and_the_loss_is_their_softmax():
    model = build_model("two_tower", PARAMS, _ctx(), l2=0.0, seed=0)
    sess = _session(model)
    users, items = np.array([1, 2, 5], np.int32), np.array([3, 7, 8], np.int32)
    history = np.array([[2, 4, 0], [1, 0, 0], [6, 2, 4]], np.int32)  # no candidate in them
    feed, extra = _softmax_feed(model, users, items, history, np.random.default_rng(3))
    logits, loss = sess.run([model.towers.sampled_logits, model.loss], feed)
    cands = extra["candidates"]
    for i in range(3):
        pair = model.feed(np.full(cands.size, users[i]), cands, history=history[i : i + 1])
        want = sess.run(model.logits, pair) + extra["correction"][i]
        # A pair's logit leaves its item out of the history; the row's vector leaves only its
        # own positive out, so the two agree wherever the candidate is not in the history.
        cols = ~np.isin(cands, history[i])
        np.testing.assert_allclose(logits[i, cols], want[cols], rtol=1e-5, atol=1e-5)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_soft = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert np.isclose(loss, -np.mean(np.diag(log_soft)), rtol=1e-5)


def test_towers_are_unit_vectors_whose_dot_over_temperature_is_the_logit():
    model = build_model("two_tower", PARAMS, _ctx(), l2=0.0, seed=0)
    sess = _session(model)
    users, items = np.array([1, 2, 5], np.int32), np.array([3, 7, 8], np.int32)
    history = np.array([[2, 4, 0], [1, 0, 0], [0, 0, 0]], np.int32)
    feed = model.feed(users, items, history=history)
    u, v, logit = sess.run(
        [model.towers.user_embedding, model.towers.item_embedding, model.logits], feed
    )
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose((u * v).sum(axis=1) / PARAMS.get("temperature", 0.05), logit,
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def test_an_items_content_alone_gives_its_vector_when_its_id_row_is_the_unknown_ones():
    ctx = _ctx()
    model = build_model("two_tower", PARAMS, ctx, l2=0.0, seed=0)
    sess = _session(model)
    table = model.variable("two_tower/item/id")
    ids = sess.get_value(table).copy()
    ids[5] = ids[0]  # item 5 as a never-trained item: the unknown item's id row
    sess.set_value(table, ids)
    content = np.concatenate(
        [ctx.item_profile.vector["category_multi_hot"], ctx.item_profile.multi_hot["tag_idx"]], 1
    )
    assert [c["name"] for c in model.towers.content_spec] == ["category_multi_hot", "tag_idx"]
    got = sess.run(model.towers.content_embedding, {model.towers.content: content[5:6]})
    item_only = {model.item_idx: np.array([5], np.int32)}
    want = sess.run(model.towers.item_embedding, item_only)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_trainer_trains_it_with_the_softmax_and_it_learns(dataset, tmp_path):
    cfg = TrainingConfig(epochs=4, batch_size=32, learning_rate=0.01, seed=3, full_eval_users=40)
    trainer = Trainer(dataset, cfg, "two_tower", PARAMS, tmp_path, progress=False)
    assert trainer.sampler is not None
    result = trainer.fit()
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.metrics["full_recall@10"] >= 0.0 and "popularity_full_recall@10" in result.metrics
