"""Batch top-K through the two-stage chain: a real Spark run writes, for every user, what a real
server's /recommend answers with the same versions and `serving.recommend` settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch.job import BatchError, output_uri, run
from bench.two_stage_models import build_platform_versions
from peppercorn.config import Config
from peppercorn.model_repository import ModelRepository

DAY = "2026-11-02"
BLOCKLIST = ["r000002", "r000009"]
# Batched and one-user runs round differently (a matrix product's last bit depends on its
# rows): a ranker's score moves by an ulp or two, and a score the retrieval model gives,
# sigmoid(u.v / T), by up to 1/T = 20 times its user vector's rounding.
TOL = 2e-6


def assert_same_answer(got: list, want: list, label=None, tol: float = TOL) -> None:
    """Two top-k lists of (item id, score) are the same answer: the same items in the same
    order, scores within `tol`; only items whose scores are within `tol` may trade places."""
    assert len(got) == len(want), (label, got, want)
    gs, ws = np.array([s for _, s in got]), np.array([s for _, s in want])
    np.testing.assert_allclose(gs, ws, rtol=0, atol=tol, err_msg=str(label))
    want_score = dict(want)
    for (item, _), (other, score) in zip(got, want, strict=True):
        if item != other:  # a near-tie resolved the other way, at the same rank
            assert item in want_score or abs(score - ws[-1]) <= tol, (label, got, want)
            assert abs(want_score.get(item, ws[-1]) - score) <= tol, (label, got, want)


def publish_ranker(root, retrieval, drop_every: int, seed: int, name: str = "gmf", flat=False):
    """A gmf ranker whose vocabularies differ from `retrieval`'s: every `drop_every`-th user and
    item missing, the rest in another order, one user of its own; random weights and seen
    (`flat`: three score levels set by an item bias, everything else 0, so ties abound)."""
    import engine as tf
    from peppercorn.version_assets import VersionContents
    from training.export import publish_model
    from training.models import BuildContext, build_model

    rng = np.random.default_rng(seed)
    users = [t for i, t in enumerate(retrieval.users.tokens[1:], 1) if i % drop_every][::-1]
    users.append("stranger")
    items = [t for i, t in enumerate(retrieval.items.tokens[1:], 1) if i % drop_every]
    items = [items[i] for i in rng.permutation(len(items))]
    ctx = BuildContext(len(users) + 1, len(items) + 1)
    model = build_model("gmf", {"factors": 8, "item_bias": flat}, ctx, 0.0, seed)
    session = tf.Session(model.graph)
    session.initialize_variables()
    for variable in model.graph.variables if flat else ():
        value = np.zeros_like(session.get_value(variable))
        if variable.name == "gmf/item_bias":
            value[:, 0] = np.arange(value.shape[0]) % 3
        session.set_value(variable, value)
    seen = [np.sort(rng.choice(np.arange(1, len(items) + 1), 4, replace=False)) for _ in users]
    indptr = np.zeros(len(users) + 2, np.int64)
    indptr[2:] = np.cumsum([s.size for s in seen])

    def vocab(name, tokens):
        return {"name": name, "id_type": "string", "min_frequency": 1, "tokens": ["<unk>", *tokens]}

    contents = VersionContents(
        vocabs={"user_id": vocab("user_id", users), "item_id": vocab("item_id", items)},
        popular_idx=np.arange(1, 6, dtype=np.int32),
        popular_count=np.arange(10, 5, -1, dtype=np.int64),
        seen_indptr=indptr,
        seen_indices=np.concatenate(seen).astype(np.int32),
        feature_spec={"model": "gmf", "params": model.params},
    )
    publish_model(root, name, session, model, contents)
    return ModelRepository(str(root)).version(name).open()


def _config(root, ranking: str, output: str, retrieval="two_tower", **batch) -> Config:
    return Config.model_validate(
        {
            "dataset": {"name": "tiny"},
            "paths": {"data_root": str(root / "data"), "model_repository": str(root / "models")},
            "spark": {"master": "local[2]", "shuffle_partitions": 2},
            "model": {"name": "neumf"},
            "serving": {
                "recommend": {
                    "retrieval": retrieval,
                    "ranking": ranking,
                    "candidates": 25,
                    "blocklist": BLOCKLIST,
                },
            },  # fmt: skip
            "batch": {"k": 6, "output": str(root / output), **batch},
        }
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """two_tower v1, neumf v1 (the same vocabularies) and gmf v1 (other vocabularies)."""
    root = tmp_path_factory.mktemp("chain_batch")
    build_platform_versions(root / "models", users=120, items=90, seen_per_user=8, seed=7)
    retrieval = ModelRepository(str(root / "models")).version("two_tower").open()
    publish_ranker(root / "models", retrieval, drop_every=5, seed=8)
    return root


def _read(cfg) -> pd.DataFrame:
    df = pd.read_parquet(f"{output_uri(cfg)}/dt={DAY}")
    return df.sort_values(["user_id", "rank"]).reset_index(drop=True)


def _online(cfg, users) -> dict:
    """Each user's /recommend answer from a real app with `cfg`'s settings (the same chain)."""
    from fastapi.testclient import TestClient

    from serving.main import create_app
    from serving.settings import Settings
    from tests.serving.conftest import wait_until

    answers = {}
    with TestClient(create_app(Settings.from_config(cfg))) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        for user in users:
            r = client.post("/recommend", json={"user_id": user, "k": cfg.batch.k})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["retrieval"] == {"model": "two_tower", "version": 1}, body
            answers[user] = [(str(it["item_id"]), it["score"]) for it in body["items"]]
    return answers


@pytest.fixture(scope="module")
def chain_run(spark, repo):
    """ranking -> (cfg, summary) of a chain run with that ranker, run once per module."""
    done = {}

    def get(ranking: str):
        if ranking not in done:
            cfg = _config(repo, ranking, f"out-{ranking}")
            done[ranking] = cfg, run(cfg, spark, DAY)
        return done[ranking]

    return get


@pytest.mark.parametrize("ranking", ["neumf", "gmf"])
def test_every_user_gets_what_the_server_answers(repo, chain_run, ranking):
    cfg, summary = chain_run(ranking)
    ranker = ModelRepository(str(repo / "models")).version(ranking).open()
    users = ranker.users.tokens[1:]
    assert summary["model"] == ranking and summary["users"] == len(users)
    assert summary["retrieval"] == {"model": "two_tower", "version": 1, "candidates": 25,
                                    "blocklist": 2}  # fmt: skip
    got = _read(cfg)
    assert set(got["model"]) == {ranking} and set(got["version"]) == {1}
    online = _online(cfg, users)
    by_user = {u: list(zip(g["item_id"], g["score"].astype(float), strict=True))
               for u, g in got.groupby("user_id")}  # fmt: skip
    for user in users:
        assert_same_answer(by_user.get(user, []), online[user], user)
        ranks = got.loc[got["user_id"] == user, "rank"].tolist()
        assert ranks == list(range(1, len(ranks) + 1))
    assert len(got) == 6 * len(users)  # 25 candidates always leave k = 6


def test_seen_and_blocklisted_items_are_never_written(repo, chain_run):
    got = _read(chain_run("neumf")[0])
    models = ModelRepository(str(repo / "models"))
    retrieval, ranker = models.version("two_tower").open(), models.version("neumf").open()
    for user, rows in got.groupby("user_id"):
        seen = {ranker.items.tokens[i] for i in ranker.seen(ranker.users.lookup(user))}
        seen |= {retrieval.items.tokens[i] for i in retrieval.seen(retrieval.users.lookup(user))}
        assert not set(rows["item_id"]) & (seen | set(BLOCKLIST)), user
        assert rows["item_id"].is_unique


def test_shipped_versions_write_the_same_rows(spark, repo, chain_run):
    first, _ = chain_run("neumf")
    shipped = _config(repo, "neumf", "out-shipped", ship_model=True)
    run(shipped, spark, DAY)
    pd.testing.assert_frame_equal(_read(shipped), _read(first))


def test_a_candidate_pool_with_a_retrieval_model_is_refused(spark, repo, tmp_path):
    pool = tmp_path / "pool.txt"
    pool.write_text("r000001\n")
    cfg = _config(repo, "neumf", "out-pool", candidates=str(pool))
    with pytest.raises(BatchError, match=r"batch.candidates .* serving.recommend.retrieval"):
        run(cfg, spark, DAY)


def test_no_retrieval_version_yet_is_the_one_stage_run(spark, repo):
    cfg = _config(repo, "neumf", "out-one-stage", retrieval="not_trained_yet")
    summary = run(cfg, spark, DAY)
    assert summary["retrieval"] is None and summary["rows"] == 6 * summary["users"]


def test_a_retrieval_model_without_an_index_is_refused(spark, repo):
    cfg = _config(repo, "neumf", "out-bad", retrieval="gmf")
    with pytest.raises(BatchError, match="model gmf v1 has no ANN index"):
        run(cfg, spark, DAY)
