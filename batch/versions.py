"""Finding the model version a batch run scores with, and making it reachable from executors.

Executors read the version directory themselves.  In local mode that is simply its local
path.  On a cluster the path must be on storage every executor mounts (NFS, a shared volume),
or the version is shipped: `ship(spark, version)` zips the directory and registers it with
`SparkContext.addArchive`, which copies and unpacks it on every executor.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from batch.errors import BatchError

__all__ = ["BatchError", "ModelVersion", "latest_version", "local_dir", "resolve", "ship"]

_VERSION = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class ModelVersion:
    """One exported version: model name, version number and its directory."""

    name: str
    version: int
    path: Path

    def sizes(self) -> tuple[int, int]:
        """(user vocabulary size, item vocabulary size), index 0 included."""
        spec = self.path / "assets" / "feature_spec.json"
        data = json.loads(spec.read_text()) if spec.is_file() else {}
        if "n_users" in data and "n_items" in data:
            return int(data["n_users"]), int(data["n_items"])
        vocab = self.path / "assets" / "vocab"
        users = json.loads((vocab / "user_id.json").read_text())["tokens"]
        items = json.loads((vocab / "item_id.json").read_text())["tokens"]
        return len(users), len(items)


def local_dir(uri: str, what: str) -> Path:
    """The local directory behind a path or `file://` URI; other schemes are refused."""
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("file:"):
        return Path(uri[len("file:") :])
    if "://" in uri:
        raise BatchError(f"{what} {uri!r}: only local paths and file:// URIs are supported")
    return Path(uri)


def latest_version(repository: Path, name: str) -> int | None:
    """The highest complete version of `name` (one with a manifest), or None."""
    folder = repository / name
    if not folder.is_dir():
        return None
    versions = [
        int(p.name)
        for p in folder.iterdir()
        if _VERSION.match(p.name) and (p / "manifest.json").is_file()
    ]
    return max(versions, default=None)


def resolve(repository_uri: str, name: str, version: int | None = None) -> ModelVersion:
    """The requested version (default: the latest) of model `name`; BatchError when missing."""
    repository = local_dir(repository_uri, "paths.model_repository").resolve()
    if version is None:
        version = latest_version(repository, name)
        if version is None:
            raise BatchError(
                f"no exported version of model {name!r} under {repository}; "
                "run `make train` first (or set batch.model)"
            )
    path = repository / name / str(version)
    if not (path / "manifest.json").is_file():
        raise BatchError(f"model {name!r} has no version {version} under {repository}")
    return ModelVersion(name, int(version), path)


def ship(spark, version: ModelVersion) -> str:
    """Register the version as a Spark archive; returns the executor-side path reference."""
    name = f"{version.name}-v{version.version}"
    staging = Path(tempfile.mkdtemp(prefix="peppercorn-ship-"))
    archive = shutil.make_archive(
        str(staging / name), "zip", root_dir=version.path.parent, base_dir=version.path.name
    )
    spark.sparkContext.addArchive(archive)
    return f"spark-archive:{Path(archive).name}"
