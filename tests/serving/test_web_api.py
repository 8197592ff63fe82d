"""The raw-id web API (/predict, /recommend) against a numpy oracle of the saved model."""

from __future__ import annotations

import numpy as np
import pytest


def test_predict_scores_items_in_request_order(served):
    client, built = served
    item_ids = [300, "20", 150]  # ints map through their decimal string form
    r = client.post("/predict", json={"user_id": "u004", "item_ids": item_ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"], body["user_known"]) == ("neumf", 1, True)
    want = built.score(4, [30, 2, 15])
    np.testing.assert_allclose(body["scores"], want, rtol=1e-5)


def test_predict_unknown_user_uses_the_unknown_embedding(served):
    client, built = served
    r = client.post("/predict", json={"user_id": "stranger", "item_ids": [10, 20]})
    assert r.status_code == 200
    assert r.json()["user_known"] is False
    np.testing.assert_allclose(r.json()["scores"], built.score(0, [1, 2]), rtol=1e-5)


def test_unknown_items_are_reported_not_a_400_for_the_request(served):
    # Without a retrieval model no content can score them: null scores, listed by id.
    client, _ = served
    r = client.post("/predict", json={"user_id": "u001", "item_ids": [10, 11, "x"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scores"][0] is not None and body["scores"][1:] == [None, None]
    assert body["unknown_items"] == [11, "x"]
    r = client.post("/recommend", json={"user_id": "u001", "k": 2, "candidates": [10, 999]})
    assert r.status_code == 200 and r.json()["unknown_items"] == [999]
    assert [it["item_id"] for it in r.json()["items"]] in ([10], [])  # 10 unless seen
    r = client.post("/recommend", json={"user_id": "newcomer", "k": 2, "candidates": [999]})
    assert r.status_code == 200 and r.json()["items"] == []
    assert r.json()["unknown_items"] == [999] and r.json()["fallback"] is True


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"user_id": "u001", "item_ids": []}, 400, "item_ids"),
        ({"user_id": "u001"}, 400, "item_ids: field required"),
        ({"user_id": 1.5, "item_ids": [10]}, 400, "user_id"),
        ({"user_id": True, "item_ids": [10]}, 400, "user_id"),
        ({"user_id": "u001", "item_ids": [10] * 51}, 413, "item_ids too large: 51"),
        ({"user_id": "u001", "item_ids": [10], "model": "other"}, 404, "Latest(other)"),
        ({"user_id": "u001", "item_ids": [10], "bogus": 1}, 400, "bogus"),
    ],
)
def test_predict_errors(served, body, code, fragment):
    client, _ = served
    r = client.post("/predict", json=body)
    assert r.status_code == code, r.text
    assert fragment.lower() in r.json()["error"].lower()


def _oracle_top_k(built, user: int, k: int, exclude_seen: bool, pool=None):
    pool = np.arange(1, len(built.item_ids) + 1) if pool is None else np.asarray(pool)
    if exclude_seen:
        pool = np.array([i for i in pool if i not in built.seen[user]])
    scores = built.score(user, pool)
    order = sorted(range(len(pool)), key=lambda j: (-scores[j], pool[j]))[:k]
    return [int(built.item_ids[pool[j] - 1]) for j in order], [scores[j] for j in order]


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_recommend_top_k_over_all_items(served, exclude_seen):
    client, built = served
    r = client.post("/recommend", json={"user_id": "u007", "k": 5, "exclude_seen": exclude_seen})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fallback"] is False and body["version"] == 1
    ids, scores = _oracle_top_k(built, 7, 5, exclude_seen)
    assert [it["item_id"] for it in body["items"]] == ids
    np.testing.assert_allclose([it["score"] for it in body["items"]], scores, rtol=1e-5)
    seen_ids = {int(built.item_ids[i - 1]) for i in built.seen[7]}
    returned = {it["item_id"] for it in body["items"]}
    assert not (returned & seen_ids) if exclude_seen else True


def test_recommend_over_candidates_and_k_beyond_pool(served):
    client, built = served
    candidates = [int(built.item_ids[i - 1]) for i in (1, 2, 3, 4, 5, 6)]
    r = client.post("/recommend", json={"user_id": "u002", "k": 50, "candidates": candidates})
    assert r.status_code == 200
    ids, _ = _oracle_top_k(built, 2, 50, True, pool=[1, 2, 3, 4, 5, 6])
    assert [it["item_id"] for it in r.json()["items"]] == ids


def test_recommend_unknown_user_falls_back_to_popular_items(served):
    client, built = served
    r = client.post("/recommend", json={"user_id": "newcomer", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] is True
    assert [it["item_id"] for it in body["items"]] == [
        int(built.item_ids[i - 1]) for i in built.popular[:3]
    ]
    total = sum(built.counts)
    np.testing.assert_allclose(
        [it["score"] for it in body["items"]], [c / total for c in built.counts[:3]], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"user_id": "u001", "k": 0}, 400, "k"),
        ({"user_id": "u001", "k": 51}, 413, "k too large"),
        ({"user_id": "u001", "k": "3"}, 400, "k"),
    ],
)
def test_recommend_errors(served, body, code, fragment):
    client, _ = served
    r = client.post("/recommend", json=body)
    assert r.status_code == code, r.text
    assert fragment in r.json()["error"]


@pytest.mark.parametrize("default", [None, "gmf", "absent"])
def test_requests_without_a_model_go_to_the_default_model(repo, default):
    from fastapi.testclient import TestClient

    from serving.main import create_app
    from tests.serving.conftest import build_version, make_settings, wait_until

    build_version(repo, "neumf", 1, seed=1)
    gmf = build_version(repo, "gmf", 1, seed=2)
    app = create_app(make_settings(repo, default_model=default))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        r = client.post("/predict", json={"user_id": "u004", "item_ids": [300]})
        if default == "gmf":
            assert r.status_code == 200 and r.json()["model"] == "gmf"
            np.testing.assert_allclose(r.json()["scores"], gmf.score(4, [30]), rtol=1e-5)
        else:
            assert r.status_code == 400
            assert "'model' is required: several models are served" in r.json()["error"]


def test_the_default_model_is_the_one_the_config_trains():
    from peppercorn.config import Config, ModelConfig, ServingConfig
    from serving.settings import Settings

    assert Settings.from_config(Config(model=ModelConfig(name="gmf"))).default_model == "gmf"
    cfg = Config(model=ModelConfig(name="gmf"), serving=ServingConfig(default_model="neumf"))
    assert Settings.from_config(cfg).default_model == "neumf"
