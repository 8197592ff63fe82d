"""The model registry: exported versions registered in MLflow, and aliases naming them.

Every version a tracked run exports is registered under the model's name (registering is
what `RunTracker.log_export` does). MLflow numbers registry versions itself, so a registry
version carries the repository version it stands for in its tags (`peppercorn.version`,
`peppercorn.repository`, `peppercorn.version_checksum`); its source is a small pointer file
in the run's artifacts, a source every MLflow store accepts. An alias (`stable`, `canary`)
names a registry version; `alias_targets` says which repository version each alias stands for,
or why it stands for none, and the model server moves its TF Serving labels to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peppercorn.fs import is_local

__all__ = [
    "AliasTarget",
    "RegistryError",
    "alias_targets",
    "canonical_repository",
    "register_version",
    "set_alias",
]

VERSION_TAG = "peppercorn.version"
REPOSITORY_TAG = "peppercorn.repository"
CHECKSUM_TAG = "peppercorn.version_checksum"
POINTER = "peppercorn-version"


class RegistryError(ValueError):
    """An alias or a version the registry cannot resolve; the message says which and why."""


def canonical_repository(uri: str) -> str:
    """One spelling per repository: a local path as an absolute `file://` URI, `s3a://` as
    `s3://`, anything else as given (no trailing slash)."""
    uri = str(uri).rstrip("/")
    if is_local(uri):
        return Path(uri.removeprefix("file://").removeprefix("file:")).resolve().as_uri()
    return "s3://" + uri.removeprefix("s3a://") if uri.startswith("s3a://") else uri


def register_version(client, run_id: str, version: Any, checksum: str) -> str:
    """Register the exported `version` (an `ExportedVersion`) of the run `run_id` under its
    model's name; returns the registry version number."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            version.name, description="Peppercorn model; versions registered by training runs"
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    repository = canonical_repository(version.repository.uri)
    pointer = {"model": version.name, "version": version.version, "uri": version.uri,
               "repository": repository, "checksum": checksum}  # fmt: skip
    client.log_dict(run_id, pointer, f"{POINTER}/version.json")
    registered = client.create_model_version(
        version.name,
        source=f"runs:/{run_id}/{POINTER}",
        run_id=run_id,
        tags={
            VERSION_TAG: str(version.version),
            REPOSITORY_TAG: repository,
            CHECKSUM_TAG: checksum,
            "peppercorn.version_uri": version.uri,
        },  # fmt: skip
        description=f"{version.name} version {version.version} in {repository}",
    )
    return str(registered.version)


def _registry_versions(client, model: str) -> list:
    return list(client.search_model_versions(f"name = '{model}'", max_results=10_000))


def set_alias(client, model: str, alias: str, version: int, repository: str) -> str:
    """Point `alias` of `model` at the registry version standing for repository `version`
    (of `repository`); returns that registry version. Raises `RegistryError` when the version
    was never registered."""
    wanted = canonical_repository(repository)
    matches = [
        mv
        for mv in _registry_versions(client, model)
        if mv.tags.get(VERSION_TAG) == str(version) and mv.tags.get(REPOSITORY_TAG) == wanted
    ]
    if not matches:
        raise RegistryError(
            f"{model} version {version} of {wanted} is not in the model registry (a version "
            "is registered when a tracked run exports it)"
        )
    newest = max(matches, key=lambda mv: int(mv.version))
    client.set_registered_model_alias(model, alias, newest.version)
    return str(newest.version)


@dataclass(frozen=True)
class AliasTarget:
    """What one alias names: the repository `version` (None when it names none usable) and
    the `problem` saying why not."""

    alias: str
    registry_version: str
    version: int | None
    problem: str | None = None


def _target(model: str, alias: str, mv, repository: str) -> AliasTarget:
    where = f"alias {alias} names registry version {mv.version} of {model}"
    number, their_repository = mv.tags.get(VERSION_TAG), mv.tags.get(REPOSITORY_TAG)
    if number is None or not number.isdigit():
        why = f"{where}, which has no {VERSION_TAG} tag (not a Peppercorn export)"
        return AliasTarget(alias, str(mv.version), None, why)
    if their_repository is not None and their_repository != repository:
        why = f"{where}, version {number} of {their_repository}, not of this server's repository"
        return AliasTarget(alias, str(mv.version), None, why)
    return AliasTarget(alias, str(mv.version), int(number))


def alias_targets(client, model: str, repository: str) -> dict[str, AliasTarget]:
    """Every alias of `model` in the registry and the version of `repository` it names (none
    when the model is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(model)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    repository = canonical_repository(repository)
    out = {}
    for alias, number in (registered.aliases or {}).items():
        mv = client.get_model_version(model, str(number))
        out[alias] = _target(model, alias, mv, repository)
    return out
