"""The model manager: version policies, hot loading, discovery of new models, refusal of
corrupt versions, and retiring a version only after its in-flight requests finish."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from peppercorn.config import ServedModelConfig
from peppercorn.model_repository import ModelRepository
from serving.manager import ModelManager
from serving.metrics import ServerMetrics
from tests.serving.conftest import build_version


def _manager(repo: Path, loader=None, **cfg) -> ModelManager:
    models = {"neumf": ServedModelConfig(**cfg)} if cfg else {}
    extra = {"loader": loader} if loader else {}
    return ModelManager(ModelRepository(str(repo)), models, ServerMetrics(), **extra)


def _states(manager: ModelManager) -> dict[str, str]:
    return {s["version"]: s["state"] for s in manager.status("neumf")}


def _failures(manager: ModelManager) -> float:
    value = manager.metrics.registry.get_sample_value(
        "peppercorn_model_load_failures_total", {"model": "neumf"}
    )
    return value or 0.0


def _score(manager: ModelManager, **where) -> tuple[int, float]:
    with manager.acquire("neumf", **where) as served:
        return served.version, float(served.score(1, np.array([1], dtype=np.int32))[0])


def test_latest_policy_hot_loads_a_new_version_and_retires_the_old(repo):
    v1 = build_version(repo, version=1, seed=1)
    manager = _manager(repo)  # nothing configured: models found in the repository
    manager.poll()
    assert manager.model_names() == ["neumf"] and manager.ready()
    assert _score(manager) == (1, pytest.approx(v1.score(1, [1])[0], rel=1e-5))
    v2 = build_version(repo, version=2, seed=2)
    manager.poll()
    assert _states(manager) == {"2": "AVAILABLE"}
    assert _score(manager) == (2, pytest.approx(v2.score(1, [1])[0], rel=1e-5))


def test_all_specific_and_labels(repo):
    for v in (1, 2, 3):
        build_version(repo, version=v, seed=v)
    manager = _manager(repo, policy="specific", versions=[1, 3], labels={"stable": 1, "canary": 3})
    manager.poll()
    assert _states(manager) == {"1": "AVAILABLE", "3": "AVAILABLE"}
    assert _score(manager, label="stable")[0] == 1
    assert _score(manager, label="canary")[0] == 3
    assert _score(manager)[0] == 3
    assert manager.status("neumf", label="stable")[0]["version"] == "1"
    every = _manager(repo, policy="all")
    every.poll()
    assert set(_states(every)) == {"1", "2", "3"}
    latest2 = _manager(repo, policy="latest", latest=2)
    latest2.poll()
    assert set(_states(latest2)) == {"2", "3"}


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["checksum", "missing_asset"])
def test_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(repo, tmp_path, damage):
    build_version(repo, version=1, seed=1)
    manager = _manager(repo)
    manager.poll()
    staged = build_version(tmp_path / "staging", version=2, seed=2).path
    target = repo / "neumf" / "2"
    if damage == "checksum":
        shutil.copytree(staged, target)
        _flip_a_byte(target / "variables.npz")
    else:  # intact by its checksum, but without an asset the server needs
        build_version(repo, version=2, seed=2, drop_assets=("popular_items.json",))
    manager.poll()
    status = {s["version"]: s for s in manager.status("neumf")}
    assert status["1"]["state"] == "AVAILABLE"
    assert status["2"]["state"] == "END"
    code, fragment = {
        "checksum": ("DATA_LOSS", "checksum mismatch"),
        "missing_asset": ("NOT_FOUND", "missing asset popular_items.json"),
    }[damage]
    assert status["2"]["status"]["error_code"] == code
    assert fragment in status["2"]["status"]["error_message"]
    assert _failures(manager) == 1.0
    assert _score(manager)[0] == 1
    manager.poll()  # unchanged: not retried, not counted again
    assert _failures(manager) == 1.0
    shutil.rmtree(target)
    shutil.copytree(staged, target)  # repaired: the files changed, so it is tried again
    manager.poll()
    assert _states(manager) == {"2": "AVAILABLE"}
    assert _score(manager)[0] == 2


def test_a_half_written_version_is_not_a_version_until_its_manifest_lands(repo, tmp_path):
    build_version(repo, version=1, seed=1)
    manager = _manager(repo)
    manager.poll()
    staged = build_version(tmp_path / "staging", version=2, seed=2).path
    target = repo / "neumf" / "2"
    shutil.copytree(staged, target, ignore=shutil.ignore_patterns("manifest.json"))
    manager.poll()
    assert _states(manager) == {"1": "AVAILABLE"}  # not listed, not refused
    assert _failures(manager) == 0.0 and _score(manager)[0] == 1
    shutil.copy(staged / "manifest.json", target / "manifest.json")  # written last
    manager.poll()
    assert _states(manager) == {"2": "AVAILABLE"}
    assert _score(manager)[0] == 2


def test_missing_signature_input_is_refused_as_invalid_argument(repo):
    import engine as tf
    from engine.saved import save

    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder("int32", [None], name="user_idx")
        table = tf.Variable(np.zeros((3, 2), dtype=np.float32), name="t")
        score = tf.sigmoid(tf.reduce_sum(tf.embedding_lookup(table, user_idx), axis=1))
        session = tf.Session(graph)
        session.initialize_variables()
    sig = {"serving_default": {"inputs": {"user_idx": user_idx}, "outputs": {"score": score}}}
    save(repo / "neumf" / "1", session, sig, assets={})
    manager = _manager(repo)
    manager.poll()
    (only,) = manager.status("neumf")
    assert only["state"] == "END"
    assert only["status"]["error_code"] == "INVALID_ARGUMENT"
    assert "item_idx" in only["status"]["error_message"]
    assert not manager.ready()


def test_a_retired_version_stays_until_its_in_flight_requests_finish(repo):
    build_version(repo, version=1, seed=1)
    manager = _manager(repo)
    manager.poll()
    with manager.acquire("neumf") as old:
        build_version(repo, version=2, seed=2)
        manager.poll()
        assert _states(manager) == {"2": "AVAILABLE", "1": "UNLOADING"}
        assert _score(manager)[0] == 2  # new requests go to the new version at once
        assert old.score(1, np.array([1], dtype=np.int32)).shape == (1,)  # old still works
    assert _states(manager) == {"2": "AVAILABLE"}


def test_every_poll_discovers_new_model_names(repo):
    build_version(repo, "neumf", 1, seed=1)
    manager = _manager(repo)
    manager.poll()
    assert manager.model_names() == ["neumf"]
    gmf = build_version(repo, "gmf", 1, seed=7)  # a model exported after the first poll
    manager.poll()
    assert manager.model_names() == ["gmf", "neumf"] and manager.ready()
    with manager.acquire("gmf") as served:
        got = served.score(2, np.array([3, 4], dtype=np.int32))
    np.testing.assert_allclose(got, gmf.score(2, [3, 4]), rtol=1e-5)
    configured = _manager(repo, policy="latest")  # with models configured, only those
    configured.poll()
    assert configured.model_names() == ["neumf"]


def test_readiness_counts_a_found_model_once_it_has_a_complete_version(repo, tmp_path):
    build_version(repo, "neumf", 1, seed=1)
    manager = _manager(repo)
    manager.poll()
    (repo / "gmf" / ".1.staging-abc").mkdir(parents=True)  # a first export being written
    manager.poll()
    assert "gmf" in manager.model_names() and manager.ready()
    staged = build_version(tmp_path / "staging", "gmf", 1).path
    shutil.copytree(staged, repo / "gmf" / "1")
    _flip_a_byte(repo / "gmf" / "1" / "variables.npz")
    manager.poll()  # complete but refused: a served model without a version
    assert not manager.ready()
    shutil.rmtree(repo / "gmf" / "1")
    shutil.copytree(staged, repo / "gmf" / "1")
    manager.poll()
    assert manager.ready()


def test_a_server_is_not_ready_while_a_found_model_waits_for_its_first_load(repo):
    # The first poll loads models one by one: while the first loads, the second must already
    # keep the server out of rotation (a two-stage /recommend would otherwise run one-stage).
    build_version(repo, "gmf", 1, seed=7)
    build_version(repo, "neumf", 1, seed=1)
    manager = _manager(repo)
    seen = []
    load = manager._ensure_loaded

    def spying(model, exported):
        seen.append((exported.name, manager.not_ready()))
        return load(model, exported)

    manager._ensure_loaded = spying
    manager.poll()
    waiting = ["model gmf has no version loaded", "model neumf has no version loaded"]
    assert seen[0] == ("gmf", waiting)
    assert seen[1] == ("neumf", ["model neumf has no version loaded"])
    assert manager.ready()


def test_a_read_error_is_not_a_verdict_and_is_retried_on_the_next_poll(repo):
    build_version(repo, version=1, seed=1)
    calls = []

    def flaky(version):
        calls.append(version.version)
        if len(calls) == 1:
            raise OSError("connection reset by peer")
        return version.open()

    manager = _manager(repo, loader=flaky)
    manager.poll()
    (only,) = manager.status("neumf")
    assert only["state"] == "END" and only["status"]["error_code"] == "UNAVAILABLE"
    assert "connection reset" in only["status"]["error_message"]
    manager.poll()  # the files did not change, yet it is tried again
    assert _states(manager) == {"1": "AVAILABLE"} and calls == [1, 1]


class _FlakyListing:
    """A filesystem whose directory listings fail while `broken` (a remote store's hiccup)."""

    def __init__(self, fs):
        self.fs, self.broken = fs, False

    def get_file_info(self, what):
        if self.broken:
            raise OSError("listing failed: 503 Slow Down")
        return self.fs.get_file_info(what)

    def __getattr__(self, name):
        return getattr(self.fs, name)


def test_a_repository_that_cannot_be_listed_retires_nothing(repo):
    build_version(repo, version=1, seed=1)
    manager = _manager(repo)
    manager.poll()
    flaky = _FlakyListing(manager.repository.fs)
    manager.repository.fs = flaky
    flaky.broken = True
    with pytest.raises(OSError, match="Slow Down"):
        manager.poll()  # the poller logs it and tries again next time
    assert _states(manager) == {"1": "AVAILABLE"} and manager.ready()
    assert _score(manager)[0] == 1
