"""Schema-driven fuzzing (schemathesis over the app's OpenAPI schema): no input gets a 5xx.

In the suite the examples are derandomised (the same ones every run), so CI on an unchanged
tree cannot turn red on a new random finding. `make fuzz` explores: random examples, many more
of them (PEPPERCORN_FUZZ_EXAMPLES); a finding there becomes a fixed case in the error tests.
"""

from __future__ import annotations

import os

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from serving.main import create_app, online_state  # noqa: E402
from tests.serving.conftest import build_version, make_settings  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    repo = tmp_path_factory.mktemp("models")
    build_version(repo, "neumf", 1, seed=1)
    store = {"online_store": {"kind": "sqlite"}, "online_store_path": str(repo / "store.sqlite")}
    settings = make_settings(repo, max_instances=100, admin_token="tok", **store)
    app = create_app(settings)
    app.state.manager.poll()  # loaded synchronously; the poller thread is not needed here
    app.state.online = online_state(settings, app.state.metrics)  # the lifespan's, too
    return app


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


EXPLORE = int(os.environ.get("PEPPERCORN_FUZZ_EXAMPLES", "0"))


@schema.parametrize()
@settings(
    max_examples=EXPLORE or 20,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, (case.path, case.body, response.text)
