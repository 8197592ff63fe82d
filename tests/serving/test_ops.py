"""Health, readiness, metrics and the token-guarded admin endpoints; the probes answer
while a long request is being scored."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient

from serving.main import create_app
from tests.serving.conftest import build_version, make_settings, wait_until


def test_health_ready_and_metrics(served):
    client, _ = served
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/predict", json={"user_id": "u001", "item_ids": [10, 20, 30]})
    client.post("/predict", json={"user_id": "u001", "item_ids": [10], "arm": "nope"})  # 400
    # The middleware records a request after its response is sent: wait for the last one.
    last = 'peppercorn_request_errors_total{code="400",endpoint="/predict"} 1.0'
    text = wait_until(lambda: next((t for t in [client.get("/metrics").text] if last in t), None))
    assert 'peppercorn_requests_total{code="200",endpoint="/predict"}' in text
    assert 'peppercorn_request_latency_seconds_count{endpoint="/predict"} 2.0' in text
    assert 'peppercorn_batch_size_sum{endpoint="predict"} 3.0' in text  # the 400 scored none
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


class _SlowGraph:
    """A saved graph that takes `seconds` over any batch bigger than warm-up's (16 pairs),
    as a full-catalogue /recommend over a large catalogue does."""

    def __init__(self, saved, seconds: float):
        self._saved, self._seconds = saved, seconds
        self.scoring = threading.Event()
        self._lock = threading.Lock()
        self.running = self.most_at_once = 0

    def predict(self, signature_name, inputs):
        if inputs["item_idx"].size > 16:
            with self._lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
            self.scoring.set()
            time.sleep(self._seconds)
            with self._lock:
                self.running -= 1
        return self._saved.predict(signature_name, inputs)


def _slow_loader(graphs: list, seconds: float):
    def load(version):
        loaded = version.open()
        loaded.saved = _SlowGraph(loaded.saved, seconds)
        graphs.append(loaded.saved)
        return loaded

    return load


def test_probes_and_status_answer_while_a_long_recommend_runs(repo):
    built = build_version(repo, "neumf", 1, seed=1)
    graphs = []
    app = create_app(make_settings(repo), loader=_slow_loader(graphs, seconds=3.0))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        answer = {}
        slow = threading.Thread(
            target=lambda: answer.update(r=client.post("/recommend", json={"user_id": "u002"}))
        )
        slow.start()
        assert graphs[0].scoring.wait(timeout=10)
        for path in ("/readyz", "/healthz", "/metrics", "/v1/models/neumf"):
            start = time.perf_counter()
            assert client.get(path).status_code == 200
            # Generous for a loaded 2-core machine; bench/serve_readyz.py measures the real
            # figure. Blocked, the event loop would answer only after the 3 s of scoring.
            assert time.perf_counter() - start < 1.0, path
        assert slow.is_alive()  # the probes were answered during the scoring
        slow.join(timeout=30)
    assert answer["r"].status_code == 200, answer["r"].text
    pool = [i for i in range(1, 31) if i not in built.seen[2]]
    scores = built.score(2, pool)
    best = sorted(range(len(pool)), key=lambda j: (-scores[j], pool[j]))[:10]
    assert [it["item_id"] for it in answer["r"].json()["items"]] == [10 * pool[j] for j in best]


def test_at_most_scoring_threads_requests_are_scored_at_once(repo):
    build_version(repo, "neumf", 1, seed=1)
    graphs = []
    settings = make_settings(repo, scoring_threads=2)
    app = create_app(settings, loader=_slow_loader(graphs, seconds=0.5))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        codes = []
        all_items, first_20 = list(range(10, 310, 10)), list(range(1, 21))
        posts = [  # every scoring endpoint, each over more than 16 pairs
            ("/recommend", {"user_id": "u001"}),
            ("/recommend", {"user_id": "u002"}),
            ("/predict", {"user_id": "u003", "item_ids": all_items}),
            ("/v1/models/neumf:predict", {"inputs": {"user_idx": [1] * 20, "item_idx": first_20}}),
        ]
        requests = [lambda p=p, b=b: client.post(p, json=b) for p, b in posts]
        threads = [
            threading.Thread(target=lambda f=f: codes.append(f().status_code)) for f in requests
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert codes == [200] * 4
    assert graphs[0].most_at_once == 2


def test_a_running_server_hands_the_gil_over_within_1_ms(repo):
    before = sys.getswitchinterval()
    with TestClient(create_app(make_settings(repo))):
        assert sys.getswitchinterval() == pytest.approx(0.001)
    assert sys.getswitchinterval() == before  # restored at shutdown
