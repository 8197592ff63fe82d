"""Issue #14's serving defects, each pinned: NaN weights are refused and NaN scores never
reach a client, /readyz after :unload, lone surrogates, relative paths in the status,
JSON-ish content types, the Bearer scheme's case, strict booleans, and a server error that
keeps the connection open."""

from __future__ import annotations

import http.client
import json
import threading
import time

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from serving.main import create_app
from serving.manager import open_version
from tests.processes import free_port
from tests.serving.conftest import build_version, make_settings, wait_until


def _status(client: TestClient, version: int) -> dict:
    """The version's status entry ({} until the server has seen the version)."""
    r = client.get(f"/v1/models/neumf/versions/{version}")
    return r.json()["model_version_status"][0] if r.status_code == 200 else {}


def test_a_version_with_nan_weights_is_refused_naming_the_variable(repo):
    good = build_version(repo, "neumf", 1, seed=1)
    app = create_app(make_settings(repo))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        build_version(repo, "neumf", 2, seed=2, nan_users=(3, 5))
        wait_until(lambda: _status(client, 2).get("state") == "END")
        status = _status(client, 2)["status"]
        assert status["error_code"] == "INVALID_ARGUMENT"
        assert "'user_embedding' has 8 non-finite values (8 NaN, 0 inf)" in status["error_message"]
        assert "first at index [3, 0]" in status["error_message"]
        r = client.post("/predict", json={"user_id": "u003", "item_ids": [10, 20]})
        assert r.status_code == 200 and r.json()["version"] == 1
        np.testing.assert_allclose(r.json()["scores"], good.score(3, [1, 2]), rtol=1e-5)


def _poisoning_loader(user: int):
    """Loads versions as the server does, then (past the loader's checks, as an overflow
    would) turns one user's embedding row into NaN."""

    def load(exported):
        version = open_version(exported)
        session, graph = version.saved.session, version.saved.graph
        var = next(v for v in graph.variables if v.name == "user_embedding")
        value = session.get_value(var)
        value[user] = np.nan
        session.set_value(var, value)
        return version

    return load


def _unwarmed_user(n_users: int, requests: int = 3) -> int:
    # serving.warmup draws its users from default_rng(0): a NaN there would refuse the version.
    rng = np.random.default_rng(0)
    drawn = set()
    for n in (1, *(16 for _ in range(requests - 1))):
        drawn |= set(rng.integers(0, n_users, n, dtype=np.int32).tolist())
        rng.integers(0, 10, n, dtype=np.int32)  # the items, drawn in between
    return min(set(range(1, n_users)) - drawn)


class _ServerThread:
    """A real uvicorn server for `app` in a thread of this process (the loader seam is not
    reachable from the command line)."""

    def __init__(self, app):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _no_constant(name: str):
    raise AssertionError(f"the response holds {name}, which is not JSON")


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, dict]:
    """Status and body; the body must be strict JSON (no NaN or Infinity literal)."""
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read(), parse_constant=_no_constant)


def test_non_finite_scores_never_reach_a_client_and_keep_the_connection(repo):
    build_version(repo, "neumf", 1, seed=1, n_users=200)
    user = _unwarmed_user(201)
    app = create_app(make_settings(repo), loader=_poisoning_loader(user))
    with _ServerThread(app) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        wait_until(lambda: _post(conn, "/predict", {"user_id": "u001", "item_ids": [10]})[0] == 200)
        sock = conn.sock
        raw = f"u{user:03d}"
        requests = [
            ("/predict", {"user_id": raw, "item_ids": [10, 20]}),
            ("/recommend", {"user_id": raw, "k": 3}),
            ("/v1/models/neumf:predict", {"instances": [{"user_idx": user, "item_idx": 1}]}),
        ]
        for path, body in requests:
            code, answer = _post(conn, path, body)
            assert code == 500, (path, answer)
            assert "non-finite scores" in answer["error"] and "'score'" in answer["error"]
            # The same keep-alive connection answers the next request.
            assert _post(conn, "/predict", {"user_id": "u001", "item_ids": [10]})[0] == 200
            assert conn.sock is sock
        conn.close()


def test_an_unhandled_error_is_a_json_500_that_keeps_the_connection(repo):
    build_version(repo, "neumf", 1, seed=1)
    app = create_app(make_settings(repo))

    @app.get("/boom")
    def boom():
        raise RuntimeError("a server bug")

    with _ServerThread(app) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/boom")
        response = conn.getresponse()
        assert response.status == 500
        assert json.loads(response.read()) == {"error": "internal server error (logged)"}
        sock = conn.sock
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200 and conn.sock is sock
        conn.close()


def test_readyz_is_not_ready_while_a_model_is_unloaded(repo):
    build_version(repo, "neumf", 1)
    app = create_app(make_settings(repo, admin_token="tok"))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        auth = {"Authorization": "Bearer tok"}
        assert client.post("/v1/models/neumf:unload", headers=auth).status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.json() == {"error": "not ready: model neumf is unloaded"}
        assert client.post("/v1/models/neumf:reload", headers=auth).status_code == 200
        assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(repo, scheme):
    build_version(repo, "neumf", 1)
    app = create_app(make_settings(repo, admin_token="Tok"))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        ok = client.post("/v1/models/neumf:reload", headers={"Authorization": f"{scheme} Tok"})
        assert ok.status_code == 200
        for wrong in (f"{scheme} tok", "Basic Tok", "Tok", f"{scheme}Tok"):
            r = client.post("/v1/models/neumf:reload", headers={"Authorization": wrong})
            assert r.status_code == 401, wrong


LONE = '"\\ud800"'  # JSON text: a lone surrogate escape, put where a body has "@"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/predict", '{"model": @, "user_id": "u001", "item_ids": [10]}', "model"),
        ("/recommend", '{"model": @, "user_id": "u001"}', "model"),
        ("/predict", '{"user_id": @, "item_ids": [10]}', "user_id"),
        ("/predict", '{"user_id": "u1", "item_ids": ["10", @]}', "item_ids.1"),
        ("/recommend", '{"user_id": "u1", "candidates": [@]}', "candidates.0"),
        ("/v1/models/neumf:predict", '{"signature_name": @, "instances": [1]}',
         "signature_name"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_is_a_400_naming_the_field(served, path, body, field):
    client, _ = served
    body = body.replace("@", LONE)
    r = client.post(path, content=body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error.startswith(f"{field}: ") and "lone surrogate '\\ud800'" in error


@pytest.mark.parametrize("value", ['"no"', '"false"', "0", "1", '"true"', "null"])
def test_exclude_seen_must_be_a_json_boolean(served, value):
    client, _ = served
    body = '{"user_id": "u001", "exclude_seen": VALUE}'.replace("VALUE", value)
    r = client.post("/recommend", content=body.encode())
    assert r.status_code == 400 and r.json()["error"].startswith("exclude_seen: ")


@pytest.mark.parametrize(
    "content_type",
    [
        None, "application/json", "application/json; charset=utf-8", "text/json",
        "TEXT/JSON", "application/x-json", "application/jsonrequest", "text/x-json",
        "application/vnd.api+json", "application/json-patch+json", "text/plain",
        "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/octet-stream", "", "garbage",
    ],
)  # fmt: skip
def test_every_content_type_is_read_as_json(served, content_type):
    client, built = served
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps({"user_id": "u001", "item_ids": [10]}).encode()
    r = client.post("/predict", content=body, headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["scores"], built.score(1, [1]), rtol=1e-5)
    r = client.post("/v1/models/neumf:predict", content=b'{"instances": [{"user_idx": 1, '
                    b'"item_idx": 1}]}', headers=headers)  # fmt: skip
    assert r.status_code == 200, r.text


def test_the_status_shows_paths_relative_to_the_repository(repo):
    build_version(repo, "neumf", 1)
    app = create_app(make_settings(repo))
    with TestClient(app) as client:
        wait_until(lambda: client.get("/readyz").status_code == 200)
        build_version(repo, "neumf", 2, seed=2)
        data = repo / "neumf" / "2" / "variables.npz"
        data.write_bytes(data.read_bytes()[:-10] + b"0123456789")
        wait_until(lambda: _status(client, 2).get("state") == "END")
        message = _status(client, 2)["status"]["error_message"]
        assert "neumf/2/variables.npz" in message
        assert str(repo) not in message and str(repo.parent) not in message
