"""Training on streamed positives (issue 15 item 4): the bounded exclusion, the evaluated
users' pairs, resume, refit, the seen pairs read for export only, distributed training."""

import numpy as np
import pytest

from engine.saved import load
from peppercorn.config import TrainingConfig, load_config
from pipeline.stages import train_and_export
from training.data import DatasetError, SeenItems, sample_negatives, with_negatives
from training.data.exclusion import ChunkExclusion, pairs_of_users
from training.evaluation import FullCatalogue, popularity_scorer, trained_items
from training.export import export_model
from training.trainer import Trainer

CHUNK_ROWS = 100  # the conftest dataset has 320 training positives in 64-row row groups


@pytest.fixture
def streamed(monkeypatch):
    """Trainers built under this stream their positives in chunks of ~CHUNK_ROWS rows."""
    monkeypatch.setattr(
        "training.trainer.training_bytes_per_positive", lambda negatives: 2**20 // CHUNK_ROWS
    )


def _cfg(**kw):
    base = dict(epochs=3, batch_size=64, learning_rate=0.01, l2=0.001, seed=7, memory_budget_mb=1)
    return TrainingConfig(**{**base, **kw})


def _variables(result):
    return {v.name: result.session.get_value(v) for v in result.model.graph.variables}


def _pairs(chunks):
    return {(int(u), int(i)) for us, its in chunks for u, i in zip(us, its, strict=True)}


@pytest.mark.parametrize("mode", ["train", "seen"])
def test_streamed_negatives_avoid_the_chunk_the_history_and_the_held_pairs(
    dataset, tmp_path, streamed, mode
):
    trainer = Trainer(dataset, _cfg(negatives_exclude=mode), "gmf", {"factors": 4}, tmp_path,
                      progress=False)  # fmt: skip
    assert trainer.train.streamed and isinstance(trainer.exclude, ChunkExclusion)
    assert "seen" not in trainer.__dict__  # the seen pairs are not read to train
    history = dataset.user_history()
    held = _pairs([(trainer.test.users, trainer.test.items)])
    rng = np.random.default_rng(0)
    for users, items in trainer.train.epoch_chunks(rng):
        assert users.size <= CHUNK_ROWS
        chunk = trainer.exclude.for_chunk(users, items)
        assert chunk.contains(users, items).all()
        rows = history.rows(np.unique(users))
        hist_users = np.repeat(np.unique(users), rows.shape[1])[rows.ravel() > 0]
        assert chunk.contains(hist_users, rows.ravel()[rows.ravel() > 0]).all()
        held_here = [(u, i) for u, i in held if u in set(users.tolist())]
        held_in = chunk.contains(*(np.array(x) for x in zip(*held_here, strict=True)))
        # "train" keeps the held-out items drawable (evaluation does not leak into training)
        assert held_in.all() if mode == "seen" else not held_in.any()
        negatives = sample_negatives(users, chunk, 4, rng)
        assert not chunk.contains(np.repeat(users, 4), negatives.ravel()).any()
    batch = with_negatives(users, items, trainer.exclude, 2, rng)
    assert len(batch) == 3 * users.size


def test_in_memory_exclusion_is_the_exact_csr(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(), "gmf", {"factors": 4}, tmp_path, progress=False)
    assert not trainer.train.streamed and isinstance(trainer.exclude, SeenItems)
    want = trained_items(trainer.train, None, dataset.n_users, dataset.n_items)
    np.testing.assert_array_equal(trainer.exclude.indices, want.indices)
    np.testing.assert_array_equal(trainer.exclude.indptr, want.indptr)


def test_evaluated_users_pairs_give_the_full_catalogue_of_all_pairs(dataset, tmp_path):
    trainer = Trainer(dataset, _cfg(), "gmf", {"factors": 4}, tmp_path, progress=False)
    n_users, n_items = dataset.n_users, dataset.n_items
    users = np.array([3, 5, 11, 20])
    kept = pairs_of_users(trainer.train.all_pairs(), users, n_users, n_items, trainer.validation)
    everything = trained_items(trainer.train, trainer.validation, n_users, n_items)
    assert set(np.flatnonzero(kept.counts())) == set(users.tolist())
    query_u = np.repeat(np.arange(n_users), n_items)
    query_i = np.tile(np.arange(n_items), n_users)
    np.testing.assert_array_equal(
        kept.contains(query_u, query_i),
        everything.contains(query_u, query_i) & np.isin(query_u, users),
    )
    score = popularity_scorer(trainer.item_counts)
    for max_users in (10, 1000):
        sub = pairs_of_users(trainer.train.all_pairs(), trainer.test.users, n_users, n_items,
                             trainer.validation)  # fmt: skip
        a = FullCatalogue.build(trainer.test, sub, max_users).evaluate(score)
        b = FullCatalogue.build(trainer.test, everything, max_users).evaluate(score)
        assert a == b


def test_streamed_resume_ends_where_an_uninterrupted_run_ends(dataset, tmp_path, streamed):
    cfg = _cfg(epochs=3, early_stopping_patience=10)
    straight = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "a", progress=False)
    assert straight.train.streamed
    straight = straight.fit()
    Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "b", progress=False).fit(epochs=1)
    resumed = Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path / "b", progress=False)
    finished = resumed.fit(resume=True)
    assert [h["loss"] for h in finished.history] == [h["loss"] for h in straight.history]
    want, got = _variables(straight), _variables(finished)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_streamed_refit_trains_learns_and_exports_the_seen_pairs(dataset, tmp_path, streamed):
    cfg = _cfg(epochs=4, refit=True, learning_rate=0.05)
    trainer = Trainer(dataset, cfg, "fism", {"factors": 4}, tmp_path / "ck", progress=False)
    result = trainer.fit()
    assert result.metrics["refit"] and trainer.train.streamed
    assert result.metrics["hr@10"] > 0
    assert "seen" not in trainer.__dict__
    version = export_model(result, dataset, trainer.seen, tmp_path / "repo", "fism", None)
    loaded = load(version.uri)
    want = dataset.seen()
    assert loaded is not None and trainer.seen.indices.tolist() == want.indices.tolist()


def test_seqfism_on_streamed_positives_is_refused_naming_model_count_and_budget(
    dataset, tmp_path, streamed
):
    params = {"factors": 4, "window": 2, "seq_length": 2}
    with pytest.raises(DatasetError, match=r"model 'seqfism'.*320 positives.*memory_budget_mb"):
        Trainer(dataset, _cfg(), "seqfism", params, tmp_path, progress=False)


@pytest.mark.slow  # a Spark barrier stage: ~35 s on two cores
def test_distributed_training_with_a_streamed_driver(spark, tmp_path, monkeypatch):
    # The driver streams (it scores and exports only); the tasks hold their shards. The run
    # must end where the single-process global batches end, as with an in-memory driver.
    from tests.training.test_distributed import _assert_same_weights, _config, _global_batch_run
    from training.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp_path / "data/syn", users=40, items=50, per_user=10,
                            eval_negatives=20)  # fmt: skip
    one = _config(tmp_path, workers=1, name="one", memory_budget_mb=1)
    single, single_metrics = _global_batch_run(one, tmp_path / "ref")
    built = []
    original = Trainer.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(Trainer, "__init__", spy)
    monkeypatch.setattr(
        "training.trainer.training_bytes_per_positive", lambda negatives: 2**20 // CHUNK_ROWS
    )
    two = load_config(_config(tmp_path, name="two", memory_budget_mb=1))
    path, metrics = train_and_export(two, progress=False)
    assert built and all(t.train.streamed and t.exclude is None for t in built)
    saved = load(path.uri)
    got = {v.name: saved.session.get_value(v) for v in saved.graph.variables if v.trainable}
    _assert_same_weights(single, got)
    assert metrics["hr@10"] == pytest.approx(single_metrics["hr@10"], abs=1e-9)
