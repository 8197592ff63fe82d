"""TF Serving labels that follow the model registry's aliases: a real MLflow SQLite registry in
tmp_path, a real ModelManager over a tmp repository of small engine-saved versions, and the
`python -m pipeline alias` command that points an alias at a repository version."""

from __future__ import annotations

import logging
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from peppercorn.config import ServedModelConfig, load_config
from peppercorn.model_repository import ExportedVersion, ModelRepository
from peppercorn.tracking.registry import canonical_repository, register_version
from serving import errors
from serving.manager import ModelManager
from serving.metrics import ServerMetrics
from serving.registry_labels import RegistryLabels
from serving.settings import Settings
from tests.serving.conftest import build_version

_TEMPLATE: list[Path] = []


def _template(factory: pytest.TempPathFactory) -> Path:
    # Creating a store runs MLflow's migrations (seconds on this machine): made once per test
    # process, then copied for each test.
    if not _TEMPLATE:
        from mlflow import MlflowClient

        db = factory.mktemp("registry-template") / "mlflow.db"
        # Both URIs: a client given no tracking URI would make MLflow's default store, a
        # mlflow.db in the working directory.
        client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
        client.search_experiments()  # the tracking tables
        client.search_registered_models()  # the registry's
        _TEMPLATE.append(db)
    return _TEMPLATE[0]


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite store (copy it; never write to it)."""
    return _template(tmp_path_factory)


class Registry:
    """A real MLflow SQLite store in a test's folder, and a run that registers versions."""

    def __init__(self, folder: Path, template: Path, repo: Path):
        from mlflow import MlflowClient

        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "mlflow.db"
        shutil.copyfile(template, self.db)
        self.uri = f"sqlite:///{self.db}"
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        experiment = self.client.create_experiment("tests", (folder / "artifacts").as_uri())
        self.run_id = self.client.create_run(experiment).info.run_id
        self.repository = ModelRepository(str(repo))

    def register(self, version: int, name: str = "neumf") -> str:
        """Register repository version `version`; its registry version number."""
        exported = ExportedVersion(self.repository, name, version)
        return register_version(self.client, self.run_id, exported, exported.checksum())

    def alias(self, alias: str, registry_version: str, name: str = "neumf") -> None:
        self.client.set_registered_model_alias(name, alias, registry_version)


@pytest.fixture(autouse=True)
def _mlflow_http_settings(monkeypatch):
    # RegistryLabels sets these where the environment does not: scoped to each test here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def registry(tmp_path, registry_template, repo) -> Registry:
    return Registry(tmp_path / "registry", registry_template, repo)


def _manager(repo: Path, registry: Registry, **cfg) -> ModelManager:
    source = RegistryLabels.for_uri(registry.uri, str(repo))
    models = {"neumf": ServedModelConfig(**cfg)}
    return ModelManager(ModelRepository(str(repo)), models, ServerMetrics(), label_source=source)


def _states(manager: ModelManager) -> dict[str, str]:
    return {s["version"]: s["state"] for s in manager.status("neumf")}


def _answer(manager: ModelManager, **where) -> tuple[int, float]:
    """(version, score of user 1 and item 1) of the version `where` names."""
    with manager.acquire("neumf", **where) as served:
        return served.version, float(served.score(1, np.array([1], dtype=np.int32))[0])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _label(version, source, registry_version=None, error=None) -> dict:
    return {"version": version, "source": source, "registry_version": registry_version,
            "error": error}  # fmt: skip


def test_an_alias_moves_the_label_within_one_poll_and_its_removal_falls_back(repo, registry):
    v1 = build_version(repo, version=1, seed=1)
    v2 = build_version(repo, version=2, seed=2)
    manager = _manager(repo, registry, policy="specific", versions=[1, 2], labels={"canary": 1})
    manager.poll()
    assert manager.labels("neumf") == {"canary": _label("1", "config")}
    registry.register(1)
    r2 = registry.register(2)
    assert r2 == "2"  # MLflow numbers registry versions 1, 2, ... in order
    registry.alias("canary", r2)
    manager.poll()
    assert manager.labels("neumf") == {"canary": _label("2", "registry", "2")}
    assert _answer(manager, label="canary") == (2, pytest.approx(v2.score(1, [1])[0], rel=1e-5))
    assert manager.status("neumf", label="canary")[0]["version"] == "2"
    registry.client.delete_registered_model_alias("neumf", "canary")
    manager.poll()
    assert manager.labels("neumf") == {"canary": _label("1", "config")}
    assert _answer(manager, label="canary") == (1, pytest.approx(v1.score(1, [1])[0], rel=1e-5))


def test_aliased_versions_outside_the_policy_are_loaded_while_an_alias_names_them(repo, registry):
    built = {v: build_version(repo, version=v, seed=v) for v in (1, 2, 3)}
    manager = _manager(repo, registry, policy="specific", versions=[2])
    manager.poll()
    assert _states(manager) == {"2": "AVAILABLE"}
    registry.alias("stable", registry.register(1))
    registry.register(2)
    registry.alias("canary", registry.register(3))
    manager.poll()
    assert _states(manager) == {"3": "AVAILABLE", "2": "AVAILABLE", "1": "AVAILABLE"}
    for label, v in (("stable", 1), ("canary", 3)):
        want = pytest.approx(built[v].score(1, [1])[0], rel=1e-5)
        assert _answer(manager, label=label) == (v, want)
    assert _answer(manager, version=3)[0] == 3
    # Requests for the model's latest version stay on the policy's: the canary (version 3,
    # newer) answers only its label and its number.
    assert _answer(manager) == (2, pytest.approx(built[2].score(1, [1])[0], rel=1e-5))
    manager.poll()
    assert _states(manager) == {"3": "AVAILABLE", "2": "AVAILABLE", "1": "AVAILABLE"}
    swaps = manager.metrics.registry.get_sample_value(
        "peppercorn_model_swaps_total", {"model": "neumf"}
    )
    assert swaps == 3.0  # kept loaded, not loaded again
    registry.client.delete_registered_model_alias("neumf", "stable")
    manager.poll()
    assert _states(manager) == {"3": "AVAILABLE", "2": "AVAILABLE"}  # no alias names 1
    with pytest.raises(errors.ServingError, match="Unrecognized servable version label: stable"):
        _answer(manager, label="stable")


def test_an_alias_the_server_cannot_follow_keeps_the_label_and_says_why(repo, registry, caplog):
    v2 = build_version(repo, version=2, seed=2)
    build_version(repo, version=1, seed=1)
    build_version(repo, version=3, seed=3)
    _flip_a_byte(repo / "neumf" / "3" / "variables.npz")
    manager = _manager(repo, registry, policy="specific", versions=[1, 2])
    registry.register(1)
    registry.alias("canary", registry.register(2))
    r3 = registry.register(3)
    manager.poll()
    assert manager.labels("neumf") == {"canary": _label("2", "registry", "2")}
    caplog.set_level(logging.INFO, logger="serving.manager")
    caplog.clear()

    registry.alias("canary", r3)  # the corrupt version
    manager.poll()
    status = {s["version"]: s for s in manager.status("neumf")}
    assert status["3"]["state"] == "END"
    assert status["3"]["status"]["error_code"] == "DATA_LOSS"  # a file's checksum
    why = (
        f"alias canary names version 3, which the server refused: DATA_LOSS: "
        f"{status['3']['status']['error_message']}; the label stays on version 2"
    )
    assert "checksum mismatch" in why
    assert manager.labels("neumf") == {"canary": _label("2", "registry", r3, why)}
    assert _answer(manager, label="canary") == (2, pytest.approx(v2.score(1, [1])[0], rel=1e-5))
    manager.poll()  # unchanged: not retried, not warned about again
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [f"model neumf: {why}"]
    assert (
        manager.metrics.registry.get_sample_value(
            "peppercorn_model_load_failures_total", {"model": "neumf"}
        )
        == 1.0
    )

    # A registry version standing for a version the repository does not have.
    repository = canonical_repository(str(repo))
    tags = {"peppercorn.version": "9", "peppercorn.repository": repository}
    r9 = str(registry.client.create_model_version("neumf", "runs:/x/y", tags=tags).version)
    registry.alias("canary", r9)
    manager.poll()
    gone = "alias canary names version 9, which is not in the repository"
    assert manager.labels("neumf")["canary"]["error"] == f"{gone}; the label stays on version 2"

    # A registry version that is not a Peppercorn export at all: the label stays, and a new
    # alias whose first version cannot be served is a label not set yet.
    foreign = str(registry.client.create_model_version("neumf", "runs:/x/y").version)
    registry.alias("canary", foreign)
    registry.alias("shadow", foreign)
    manager.poll()
    not_ours = (
        f"alias {{}} names registry version {foreign} of neumf, which has no "
        "peppercorn.version tag (not a Peppercorn export)"
    )
    labels = manager.labels("neumf")
    assert labels["canary"] == _label(
        "2", "registry", foreign, not_ours.format("canary") + "; the label stays on version 2"
    )
    assert labels["shadow"] == _label(
        None, "registry", foreign, not_ours.format("shadow") + "; the label is not set"
    )
    with pytest.raises(errors.ServingError, match="label: shadow.*not a Peppercorn export"):
        _answer(manager, label="shadow")
    assert _states(manager) == {"2": "AVAILABLE", "1": "AVAILABLE"}  # 3 left, refused once


def test_an_unreadable_registry_keeps_the_labels_and_warns_once(repo, registry, caplog):
    build_version(repo, version=1, seed=1)
    v2 = build_version(repo, version=2, seed=2)
    manager = _manager(repo, registry, labels={"stable": 1}, policy="specific", versions=[1])
    registry.alias("stable", registry.register(2))
    manager.poll()
    assert manager.labels("neumf") == {"stable": _label("2", "registry", "1")}
    good = registry.db.read_bytes()
    caplog.set_level(logging.INFO, logger="serving")
    caplog.clear()
    with registry.db.open("r+b") as db:  # the file damaged in place: SQLite cannot read it
        db.write(b"not a database" * 100)
    for _ in range(3):
        manager.poll()
        assert manager.labels("neumf") == {"stable": _label("2", "registry", "1")}
        assert _answer(manager, label="stable")[1] == pytest.approx(v2.score(1, [1])[0], rel=1e-5)
    messages = [r.getMessage() for r in caplog.records if r.name == "serving.registry_labels"]
    assert len(messages) == 1 and "cannot be read" in messages[0], messages
    assert "file is not a database" in messages[0]
    registry.db.write_bytes(good)
    manager.poll()
    manager.poll()
    messages = [r.getMessage() for r in caplog.records if r.name == "serving.registry_labels"]
    assert len(messages) == 2 and messages[1].endswith("can be read again"), messages


def test_a_registry_server_that_does_not_answer_is_left_alone_for_a_while(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        source = RegistryLabels.for_uri(f"http://127.0.0.1:{silent.getsockname()[1]}", "m")
        source.target.client()  # MLflow imported: its seconds are not the registry's
        began = time.monotonic()
        assert source.aliases("neumf") is None
        assert time.monotonic() - began >= 2
        began = time.monotonic()
        assert source.aliases("neumf") is None and source.aliases("other") is None
        assert time.monotonic() - began < 0.5  # not asked again: polls do not wait on it
    warned = [r for r in caplog.records if r.name == "serving.registry_labels"]
    assert len(warned) == 1 and "cannot be read" in warned[0].getMessage()


def test_a_registry_not_created_yet_has_no_aliases_and_stays_uncreated(repo, tmp_path):
    build_version(repo, version=1, seed=1)
    db = tmp_path / "nowhere" / "mlflow.db"
    source = RegistryLabels.for_uri(f"sqlite:///{db}", str(repo))
    manager = ModelManager(ModelRepository(str(repo)), {}, ServerMetrics(), label_source=source)
    manager.poll()
    assert _states(manager) == {"1": "AVAILABLE"} and manager.labels("neumf") == {}
    assert not db.exists() and not db.parent.exists()


def test_settings_name_the_registry_unless_tracking_or_registry_labels_are_off(
    tmp_path, monkeypatch
):
    config = tmp_path / "c.yaml"
    config.write_text(f"paths:\n  data_root: {tmp_path / 'data'}\n")
    assert Settings.from_config(load_config(str(config))).registry_uri is None  # conftest: off
    monkeypatch.delenv("PEPPERCORN_TRACKING")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    expected = f"sqlite:///{(tmp_path / 'data').resolve()}/mlflow.db"
    assert Settings.from_config(load_config(str(config))).registry_uri == expected
    config.write_text(
        f"paths:\n  data_root: {tmp_path / 'data'}\n"
        "tracking:\n  registry_uri: http://registry.example:5000\n"
    )
    assert Settings.from_config(load_config(str(config))).registry_uri == (
        "http://registry.example:5000"
    )
    config.write_text(
        f"paths:\n  data_root: {tmp_path / 'data'}\nserving:\n  labels_from_registry: false\n"
    )
    assert Settings.from_config(load_config(str(config))).registry_uri is None
    config.write_text(f"paths:\n  data_root: {tmp_path / 'data'}\ntracking:\n  enabled: false\n")
    assert Settings.from_config(load_config(str(config))).registry_uri is None


def test_the_alias_command_points_an_alias_at_a_repository_version(
    repo, registry, tmp_path, monkeypatch, capsys
):
    from pipeline.cli import main

    for v in (1, 2):
        build_version(repo, version=v, seed=v)
    registry.register(1)
    registry.register(2)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"paths:\n  model_repository: {repo}\nmodel:\n  name: neumf\n"
        f"tracking:\n  uri: {registry.uri}\n"
    )
    args = ["alias", "--config", str(config)]
    assert main([*args, "canary", "2"]) == 2  # tracking is off in tests (conftest)
    assert "tracking is off" in capsys.readouterr().err
    monkeypatch.delenv("PEPPERCORN_TRACKING")

    assert main([*args, "canary", "2"]) == 0
    out = capsys.readouterr().out
    assert registry.client.get_registered_model("neumf").aliases == {"canary": 2}
    assert "canary" in out and "registry version 2" in out and "version 2 of" in out
    assert main([*args, "--model", "neumf", "canary", "1"]) == 0
    assert registry.client.get_registered_model("neumf").aliases == {"canary": 1}

    assert main([*args, "canary", "7"]) == 2  # never registered
    err = capsys.readouterr().err
    assert err.startswith("error: neumf version 7 of") and "not in the model registry" in err
    assert main([*args, "--model", "other", "canary", "1"]) == 2
    assert "other version 1" in capsys.readouterr().err
    assert main([*args, "latest", "1"]) == 2  # a name MLflow reserves
    assert capsys.readouterr().err.startswith("error: ")
    assert main([*args, "canary"]) == 2
    assert "VERSION" in capsys.readouterr().err

    assert main([*args, "--delete", "canary"]) == 0
    assert "removed" in capsys.readouterr().out
    assert registry.client.get_registered_model("neumf").aliases == {}
    assert main([*args, "--delete", "canary"]) == 2
    assert "has no alias canary" in capsys.readouterr().err
