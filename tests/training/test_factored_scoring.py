"""Factored full-catalogue scoring (issue 15 item 5): a model whose logit is a user vector dot
an item vector plus an item bias is scored against the whole catalogue with one matmul per
chunk of users; it must give the pairwise logits, and so the same full-catalogue metrics."""

import time

import numpy as np
import pytest

import engine as tf
from peppercorn.config import TrainingConfig
from training.data import EvalSet, SeenItems, UserHistory
from training.distributed.apply import is_row_sparse
from training.evaluation import FullCatalogue, popularity_scorer, popularity_users_scorer
from training.models import BuildContext, build_model
from training.scoring import factored_scorer, full_catalogue_scorer, score_pairs
from training.trainer import Trainer

FACTORED = [
    ("gmf", {"factors": 8, "item_bias": True}),
    ("gmf", {"factors": 8}),
    ("fism", {"factors": 8}),
    ("seqfism", {"factors": 8, "window": 4}),
    ("seqfism", {"factors": 8, "window": 4, "seq_length": 3, "negatives_in_context": False}),
    ("two_tower", {"dim": 8, "id_dim": 8, "layers": [8], "uniform_negatives": 16}),
]


def _cfg(**kw):
    base = dict(epochs=2, batch_size=64, learning_rate=0.01, l2=0.001, seed=7)
    return TrainingConfig(**{**base, **kw})


def _trained(dataset, tmp_path, name, params):
    # Trained a little, so the weights (biases and output layer included) are not their
    # initial values; the session holds the last epoch's weights.
    trainer = Trainer(dataset, _cfg(), name, params, tmp_path, progress=False)
    rng = np.random.default_rng(0)
    for epoch in (1, 2):
        trainer.run_epoch(epoch, rng)
    return trainer


def _pairwise_logits(trainer, users):
    n_items = trainer.dataset.n_items
    pair_users = np.repeat(users.astype(np.int32), n_items - 1)
    items = np.tile(np.arange(1, n_items, dtype=np.int32), users.size)
    logits = score_pairs(trainer.session, trainer.model, pair_users, items, logits=True)
    return logits.reshape(users.size, n_items - 1)


@pytest.mark.parametrize(("name", "params"), FACTORED)
def test_factored_logits_are_the_pairwise_logits_for_every_pair(dataset, tmp_path, name, params):
    trainer = _trained(dataset, tmp_path, name, params)
    assert trainer.model.factors is not None
    users = np.arange(dataset.n_users)
    got = factored_scorer(trainer.session, trainer.model)(users)
    want = _pairwise_logits(trainer, users)
    assert got.shape == want.shape == (dataset.n_users, dataset.n_items - 1)
    # Every cell, the items in a user's fed history included (scored again pairwise).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if trainer.model.has_history:
        rows = trainer.model.history_rows(users)
        assert (rows > 0).any()  # the history cells were exercised
        # Without the pairwise re-scoring those cells would differ: the form is not exact
        # there (the scored item leaves its own history), and only there.
        in_history = np.zeros(got.shape, bool)
        r, k = np.nonzero(rows > 0)
        in_history[r, rows[r, k] - 1] = True
        plain = factored_scorer(trainer.session, trainer.model, skip=trainer.seen)(users)
        np.testing.assert_allclose(plain[~in_history], want[~in_history], rtol=1e-5, atol=1e-6)
        assert not np.allclose(plain[in_history], want[in_history], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "params"), FACTORED)
def test_full_catalogue_metrics_are_the_same_from_both_scorers(dataset, tmp_path, name, params):
    trainer = _trained(dataset, tmp_path, name, params)
    for split in ("validation", "test"):
        catalogue = trainer._full_catalogue(split)
        pairwise = catalogue.evaluate(
            lambda users, items: score_pairs(
                trainer.session, trainer.model, users, items, logits=True
            )
        )
        matrix = catalogue.evaluate(
            score_users=factored_scorer(trainer.session, trainer.model, skip=catalogue.exclude)
        )
        assert matrix == pytest.approx(pairwise, abs=1e-12)
        assert trainer.evaluate_full(split) == pytest.approx(pairwise, abs=1e-12)
        # Small chunks: the same figures whatever the chunk size.
        chunked = catalogue.evaluate(
            score_users=factored_scorer(trainer.session, trainer.model),
            chunk_pairs=3 * (dataset.n_items - 1),
        )
        assert chunked == pytest.approx(pairwise, abs=1e-12)


def test_a_model_without_factors_is_scored_pairwise(dataset, tmp_path):
    params = {"factors": 4, "mlp_embedding": 4, "layers": [8, 4]}
    trainer = _trained(dataset, tmp_path, "neumf", params)
    assert trainer.model.factors is None
    scorer = full_catalogue_scorer(trainer.session, trainer.model)
    assert set(scorer) == {"score"}
    with pytest.raises(ValueError, match="no factored form"):
        factored_scorer(trainer.session, trainer.model)
    catalogue = trainer._full_catalogue("test")
    want = catalogue.evaluate(
        lambda users, items: score_pairs(trainer.session, trainer.model, users, items, True)
    )
    assert trainer.evaluate_full("test") == want
    assert 0.0 < want["full_recall@50"] <= 1.0


def test_the_popularity_matrix_scorer_matches_the_pairwise_one(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(), "gmf", {"factors": 4}, tmp_path, progress=False)
    catalogue = trainer._full_catalogue("test")
    pairwise = catalogue.evaluate(popularity_scorer(trainer.item_counts))
    assert catalogue.evaluate(score_users=popularity_users_scorer(trainer.item_counts)) == pairwise


def test_evaluate_takes_exactly_one_scorer(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(), "gmf", {"factors": 4}, tmp_path, progress=False)
    catalogue = trainer._full_catalogue("test")
    by_count = popularity_scorer(trainer.item_counts)
    with pytest.raises(ValueError, match="one of score and score_users"):
        catalogue.evaluate()
    with pytest.raises(ValueError, match="one of score and score_users"):
        catalogue.evaluate(by_count, score_users=popularity_users_scorer(trainer.item_counts))
    with pytest.raises(ValueError, match="scorer gave"):
        catalogue.evaluate(score_users=lambda users: np.zeros((len(users), 3)))


def test_a_diverged_factored_model_is_refused(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(), "gmf", {"factors": 4}, tmp_path, progress=False)
    table = trainer.model.variable("gmf/item")
    value = trainer.session.get_value(table)
    value[3] = np.nan
    trainer.session.set_value(table, value)
    with pytest.raises(ValueError, match="NaN or infinity"):
        trainer.evaluate_full("test")


def _synthetic(name, params, n_users, n_items, history_length, seed=0):
    """A built model over `n_users` x `n_items` with random weights and histories, and a
    catalogue evaluating every user on one relevant item."""
    ctx = BuildContext(n_users, n_items, history_length=history_length)
    model = build_model(name, params, ctx, l2=0.0, seed=seed)
    session = tf.Session(model.graph)
    session.initialize_variables()
    rng = np.random.default_rng(seed)
    for var in model.graph.variables:  # spread the logits beyond their initial values
        session.set_value(var, rng.normal(0, 0.3, var.shape).astype(np.float32))
    users = np.repeat(np.arange(n_users), history_length)
    items = rng.integers(1, n_items, users.size)
    model.load_history(UserHistory.from_events(users, items, np.arange(users.size), n_users,
                                               history_length))  # fmt: skip
    exclude = SeenItems.from_pairs(users, items, n_users, n_items)
    relevant = rng.integers(1, n_items, n_users)
    data = EvalSet(np.arange(n_users), relevant, np.zeros((n_users, 0), np.int32))
    return model, session, FullCatalogue.build(data, exclude, max_users=n_users)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gmf", "fism"])
def test_factored_speed_up(name, capsys):
    """Print (not assert) the speed-up at 2,000 users x 20,000 items (fism: pairwise timed on
    a subset of the users and scaled, since every pair gathers a [L, d] history block)."""
    n_users, n_items = 2_000, 20_000
    model, session, catalogue = _synthetic(name, {"factors": 32}, n_users, n_items, 50)
    start = time.perf_counter()
    skip = catalogue.exclude
    matrix = catalogue.evaluate(score_users=factored_scorer(session, model, skip=skip))
    factored_s = time.perf_counter() - start
    sub = catalogue if name == "gmf" else _subset(catalogue, 40)
    start = time.perf_counter()
    pairwise = sub.evaluate(lambda u, i: score_pairs(session, model, u, i, logits=True))
    pairwise_s = (time.perf_counter() - start) * catalogue.users.size / sub.users.size
    if sub is catalogue:
        assert matrix == pytest.approx(pairwise, abs=1e-12)
    with capsys.disabled():
        print(
            f"\n{name}: {n_users} users x {n_items} items: pairwise {pairwise_s:.1f} s"
            f"{' (scaled from ' + str(sub.users.size) + ' users)' if sub is not catalogue else ''}"
            f", factored {factored_s:.2f} s, speed-up {pairwise_s / factored_s:.0f}x"
        )


def _subset(catalogue, n):
    rows = np.repeat(np.arange(n), catalogue.relevant.counts()[:n])
    items = catalogue.relevant.indices[: catalogue.relevant.indptr[n]]
    relevant = SeenItems.from_pairs(rows, items, n, catalogue.n_items)
    return FullCatalogue(catalogue.users[:n], relevant, catalogue.exclude, catalogue.n_items)


@pytest.mark.parametrize(("name", "params"), FACTORED)
def test_the_factored_form_keeps_the_tables_row_sparse(name, params):
    # Data-parallel training gives a table row-sparse updates when every read of it on the way
    # to the loss is a gather (`is_row_sparse`); reads off that path (the factored scoring
    # nodes) do not count, as the backward pass never visits them.
    model = build_model(name, params, BuildContext(6, 9, history_length=5), l2=0.0, seed=0)
    # Embedding tables, not the layers' weights (output layers, the two towers' MLPs).
    tables = [v for v in model.graph.variables if not {"out", "tower"} & set(v.name.split("/"))]
    assert tables and all(is_row_sparse(v, model.loss) for v in tables)


@pytest.mark.parametrize(("name", "params"), FACTORED)
def test_sampled_evaluation_through_the_factors_is_the_pairwise_one(
    dataset, tmp_path, name, params
):
    from training.metrics import evaluate_scores
    from training.scoring import factored_pair_scorer, score_eval_set

    trainer = _trained(dataset, tmp_path, name, params)
    session, model = trainer.session, trainer.model
    for data in (trainer.validation, trainer.test):
        want = score_eval_set(lambda u, i: score_pairs(session, model, u, i), data)
        got = score_eval_set(factored_pair_scorer(session, model), data)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        assert evaluate_scores(*got) == pytest.approx(evaluate_scores(*want))
    # Pairs whose item is in the user's fed history go through the pairwise logits.
    if model.has_history:
        users = np.arange(1, dataset.n_users, dtype=np.int32)
        rows = model.history_rows(users)
        r, k = np.nonzero(rows > 0)
        pair_users, items = users[r], rows[r, k]
        want = score_pairs(session, model, pair_users, items)
        got = factored_pair_scorer(session, model)(pair_users, items)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
