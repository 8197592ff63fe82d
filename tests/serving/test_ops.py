"""Health, readiness, metrics and the token-guarded admin endpoints."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.main import create_app
from tests.serving.conftest import build_version, make_settings, wait_until


def test_health_ready_and_metrics(served):
    client, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/predict", json={"user_id": "u001", "item_ids": [10, 20, 30]})
    client.post("/predict", json={"user_id": "u001", "item_ids": ["nope"]})
    text = client.get("/metrics").text
    assert 'peppercorn_requests_total{code="200",endpoint="/predict"}' in text
    assert 'peppercorn_request_errors_total{code="400",endpoint="/predict"} 1.0' in text
    assert 'peppercorn_request_latency_seconds_count{endpoint="/predict"} 2.0' in text
    assert 'peppercorn_batch_size_sum{endpoint="predict"} 3.0' in text
    assert 'peppercorn_loaded_versions{model="neumf"} 1.0' in text


def test_not_ready_until_a_version_exists(repo):
    (repo / "neumf").mkdir()
    app = create_app(make_settings(repo))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "not ready" in r.json()["error"]
        r = client.post("/predict", json={"user_id": "u1", "item_ids": [10]})
        assert r.status_code == 503 and "no version loaded" in r.json()["error"]
        build_version(repo, "neumf", 1)
        wait_until(lambda: client.get("/readyz").status_code == 200)


def test_admin_endpoints_are_off_without_a_token(served):
    client, _ = served
    r = client.post("/v1/models/neumf:reload")
    assert r.status_code == 403 and "PEPPERCORN_ADMIN_TOKEN" in r.json()["error"]


def test_admin_unload_and_reload_need_the_bearer_token(repo):
    build_version(repo, "neumf", 1)
    app = create_app(make_settings(repo, admin_token="s3cret"))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        assert client.post("/v1/models/neumf:unload").status_code == 401
        bad = {"Authorization": "Bearer wrong"}
        assert client.post("/v1/models/neumf:unload", headers=bad).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        r = client.post("/v1/models/neumf:unload", headers=auth)
        assert r.status_code == 200 and r.json() == {"model_version_status": []}
        r = client.post("/predict", json={"user_id": "u001", "item_ids": [10]})
        assert r.status_code == 404 and "unloaded" in r.json()["error"]
        assert client.post("/v1/models/nope:reload", headers=auth).status_code == 404
        r = client.post("/v1/models/neumf:reload", headers=auth)
        assert r.status_code == 200
        assert r.json()["model_version_status"][0]["state"] == "AVAILABLE"
        assert (
            client.post("/predict", json={"user_id": "u001", "item_ids": [10]}).status_code == 200
        )
