"""Freshness through a real server process, for both online stores (SQLite and a real Redis):
an event posted for a user reaches that user's next /recommend (seen filter) and the
history-reading models' scores; a room marked offline disappears and comes back; a room created
after training is recommended from its content; a restart keeps what was posted; a stopped
Redis leaves requests answering from the exported histories."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from peppercorn.config import TrainingConfig
from tests.processes import free_port, wait_ready
from tests.redis_server import redis_server  # noqa: F401
from tests.serving.conftest import train_grouped

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`two_tower` (retrieval) and `fism` (ranker), both reading each user's history."""
    root = tmp_path_factory.mktemp("fresh")
    runs = {
        "two_tower": (TrainingConfig(epochs=12, batch_size=64, learning_rate=0.01, seed=1),
                      {"dim": 16, "id_dim": 16, "layers": [32], "uniform_negatives": 32}),
        "fism": (TrainingConfig(epochs=6, batch_size=64, learning_rate=0.01, seed=1),
                 {"factors": 8}),
    }  # fmt: skip
    return train_grouped(root, runs)


class Server:
    """`pipeline serve` in its own process, restartable with the same config."""

    def __init__(self, config: Path):
        self.config, self.port, self.proc = config, free_port(), None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--config", str(self.config),
             "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        wait_ready(self.base, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def post(self, path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, timeout=30)

    def top(self, user, k: int = 15) -> list:
        r = self.post("/recommend", {"user_id": user, "k": k})
        assert r.status_code == 200, r.text
        return [it["item_id"] for it in r.json()["items"]]


def _config(tmp_path: Path, repo: Path, store: str, redis_url: str | None) -> Path:
    lines = [
        f"paths:\n  data_root: {tmp_path / 'data'}\n  model_repository: {repo}",
        "model:\n  name: fism",
        "serving:\n  poll_interval_s: 0.2\n  recommend:\n    retrieval: two_tower\n"
        "    ranking: fism\n    candidates: 20",
        f"online_store:\n  kind: {store}\n  max_events: 100\n  max_skew_s: 60",
    ]
    if redis_url:
        lines.append(f"  redis_url: {redis_url}")
    path = tmp_path / "serve.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["sqlite", "redis"])
def server(request, trained, tmp_path):
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_server").url
    srv = Server(_config(tmp_path, trained[0], request.param, redis_url)).start()
    srv.kind = request.param
    srv.raw_events = tmp_path / "data" / "synthetic" / "raw" / "events"
    try:
        yield srv
    finally:
        srv.stop()


def _event(i: int, user, item, event: str = "click", ago_s: float = 1.0) -> dict:
    ts = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=ago_s)
    return {"event_id": f"ev-{i}-{time.monotonic_ns()}", "user_id": str(user),
            "item_id": str(item), "event": event, "ts": ts.isoformat()}  # fmt: skip


def _users_of(segment: dict, group: int) -> list[int]:
    return [int(u) for u, g in segment.items() if g == group]


def test_events_rooms_and_restarts_reach_recommendations(server, trained):
    _, segment = trained
    user = _users_of(segment, 2)[0]

    # A room marked offline disappears at the next request; marked live again, it comes back.
    before = server.top(user)
    room = before[0]
    r = server.post("/v1/items", {"items": [{"item_id": room, "live": False}]})
    assert r.status_code == 200 and r.json()["offline"] == 1, r.text
    assert room not in server.top(user)
    assert server.post("/v1/items", {"items": [{"item_id": room, "live": True}]}).status_code == 200
    assert server.top(user) == before

    # An event removes the item from the user's next /recommend and moves both models' scores.
    items = before[:6]
    scores = {m: server.post("/predict", {"user_id": user, "item_ids": items, "model": m})
              for m in ("fism", "two_tower")}  # fmt: skip
    watched = before[1]
    r_watch = server.post("/v1/events", {"events": [_event(1, user, watched, "watch") | {
        "watch_seconds": 120}]})  # fmt: skip
    r = r_watch
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["stored"], r.text
    after = server.top(user)
    assert watched not in after
    for model, old in scores.items():
        new = server.post("/predict", {"user_id": user, "item_ids": items, "model": model})
        assert new.json()["scores"] != old.json()["scores"], model

    # A user the models never saw is recommended from the events the store holds.
    taste = server.top(_users_of(segment, 2)[7], k=20)
    other = set(server.top(_users_of(segment, 0)[0], k=20))
    clicks = [_event(100 + i, "newcomer", raw, ago_s=10 - i) for i, raw in enumerate(taste[:5])]
    assert server.post("/v1/events", {"events": clicks}).status_code == 200
    r = server.post("/recommend", {"user_id": "newcomer", "k": 10}).json()
    got = {it["item_id"] for it in r["items"]}
    assert r["fallback"] is False and not got & set(taste[:5])
    assert len(got & set(taste)) > len(got & other), (got, taste, other)

    # A room created after training, with content, reaches the users of its taste.
    new_room = {"item_id": "room-new-g2", "category": "g2", "tags": []}
    r = server.post("/v1/items", {"items": [new_room]})
    assert r.status_code == 200 and r.json()["indexed"] == 1, r.text
    group = _users_of(segment, 2)[1:6]
    assert sum("room-new-g2" in server.top(u) for u in group) >= 4

    # A restarted server finds all of it in the store; the raw log holds what was accepted.
    server.stop()
    logged = "".join(p.read_text() for p in server.raw_events.glob("online-*.jsonl"))
    assert json.loads(r_watch.request.content)["events"][0]["event_id"] in logged
    server.start()
    assert watched not in server.top(user)
    assert sum("room-new-g2" in server.top(u) for u in group) >= 4
    r = server.post("/v1/items", {"items": [{"item_id": room, "live": False}]})
    server.stop()
    server.start()
    assert room not in server.top(user)


@pytest.mark.parametrize(
    ("event", "status", "fragment"),
    [
        ({"event": "teleport"}, 400, "unknown_event"),
        ({"ts": "yesterday"}, 400, "bad_timestamp"),
        ({"ts": "2099-01-01T00:00:00+00:00"}, 400, "future_timestamp"),
        ({"user_id": " "}, 400, "missing_user_id"),
        ({"event": "watch"}, 400, "missing_watch_seconds"),
    ],
)
def test_a_bad_event_is_named_and_the_good_ones_are_kept(server, trained, event, status, fragment):
    _, segment = trained
    user = _users_of(segment, 1)[0]
    good = _event(7, user, server.top(user)[0])
    r = server.post("/v1/events", {"events": [good, _event(8, user, 3) | event]})
    assert r.status_code == status, r.text
    body = r.json()
    assert fragment in body["error"] and "events[1]" in body["error"]
    assert body["accepted"] == 1 and body["rejected"][0]["reason"] == fragment
    assert good["item_id"] not in server.top(user)  # the good event of the batch counted


def test_malformed_and_oversized_batches(server):
    r = server.post("/v1/events", {"events": ["not an object"]})
    assert r.status_code == 400 and "events[0]" in r.json()["error"], r.text
    r = server.post("/v1/events", {"events": [_event(i, 1, 2) for i in range(101)]})
    assert r.status_code == 413 and "events too large: 101" in r.json()["error"], r.text
    assert server.post("/v1/events", {"events": []}).status_code == 400


def test_a_stopped_redis_leaves_requests_answering(trained, tmp_path, redis_server):  # noqa: F811
    _, segment = trained
    srv = Server(_config(tmp_path, trained[0], "redis", redis_server.url)).start()
    try:
        user = _users_of(segment, 3)[0]
        before = srv.top(user)
        redis_server.stop()
        started = time.monotonic()
        assert srv.top(user) == before  # the exported history and seen items
        assert time.monotonic() - started < 5
        ready = httpx.get(f"{srv.base}/readyz").json()
        assert ready["online_store"] == "unavailable", ready
        assert "peppercorn_online_store_up 0.0" in httpx.get(f"{srv.base}/metrics").text
        r = srv.post("/v1/events", {"events": [_event(9, user, before[0])]})
        assert r.status_code == 200 and r.json()["stored"] is False, r.text  # in the raw log
        redis_server.start()
        time.sleep(1.2)  # the server retries the store after retry_s
        srv.top(user)
        assert httpx.get(f"{srv.base}/readyz").json()["online_store"] == "available"
    finally:
        srv.stop()
        redis_server.start()
