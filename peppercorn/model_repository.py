"""The model repository: where model versions are published and found (data-contracts §4).

Layout, TF Serving's: `<root>/<model>/<version>/`, `<version>` an integer of at most 18
digits. A version is complete when its `manifest.json` is there; the manifest is written
last, so a reader never takes a version that is still being written:

- on filesystems that rename atomically (local disks, HDFS) the version is written into a
  hidden staging folder beside it and renamed into place whole;
- on object stores (S3 and compatible), where a rename is a copy, the files go straight to
  the version's prefix and the manifest, which lists every file's checksum, is the completion
  marker written last.

`ModelRepository` is the one place that knows this layout: listing models and versions, the
serving version policies, publishing. `ExportedVersion.export` is the one writer of a
version's contents and `ExportedVersion.open()` the one reader (`peppercorn.loaded_version`).
Everything goes through `pyarrow.fs` (`peppercorn.fs`), so the root may be a local path or a
`file://`, `s3://`/`s3a://` or `hdfs://` URI.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from peppercorn.config import ServedModelConfig
from peppercorn.fs import filesystem, join, read_bytes, write_bytes
from peppercorn.loaded_version import LoadedVersion, VersionContents, encode_assets, load_files

__all__ = ["MANIFEST", "ExportedVersion", "ModelRepository", "RepositoryError"]

MANIFEST = "manifest.json"
_VERSION = re.compile(r"^[0-9]{1,18}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RepositoryError(ValueError):
    """A model or version that is not in the repository, or a name it cannot hold."""


def _atomic_rename(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem) or type(fs).__name__ == "HadoopFileSystem"


@dataclass(frozen=True)
class ExportedVersion:
    """One published version: model name, version number and the repository it lives in."""

    repository: ModelRepository
    name: str
    version: int

    @property
    def uri(self) -> str:
        """Where the version lives, as given to the repository (path or URI)."""
        return join(self.repository.uri, self.name, str(self.version))

    @property
    def _path(self) -> str:
        return f"{self.repository.path}/{self.name}/{self.version}"

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def files(self) -> dict[str, bytes]:
        """Every file of the version (relative path -> bytes), unverified."""
        fs = self.repository.fs
        infos = fs.get_file_info(pafs.FileSelector(self._path, recursive=True))
        prefix = self._path.rstrip("/") + "/"
        return {
            info.path[len(prefix) :]: read_bytes(fs, info.path)
            for info in infos
            if info.type == pafs.FileType.File
        }

    def fingerprint(self) -> tuple:
        """(file, size, mtime) of every file: changes whenever the version's files do."""
        try:
            infos = self.repository.fs.get_file_info(pafs.FileSelector(self._path, recursive=True))
        except OSError:
            return ("<unreadable>",)
        return tuple(sorted((i.path, i.size, i.mtime_ns) for i in infos))

    def open(self, device: str | None = None) -> LoadedVersion:
        """Read, verify (checksums, signature, assets) and load the version; raises
        `peppercorn.loaded_version.VersionError` naming what is wrong."""
        return load_files(self.name, self.version, self.uri, self.files(), device=device)

    def download(self, folder: Path) -> Path:
        """A local copy of the version's files under `folder/<model>/<version>/`."""
        target = folder / self.name / str(self.version)
        for rel, data in self.files().items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(data)
        return target


class ModelRepository:
    """The versions of every model under one root (a local path or a URI)."""

    def __init__(self, uri: str) -> None:
        self.uri = str(uri)
        self.fs, self.path = filesystem(self.uri)

    def __repr__(self) -> str:
        return f"ModelRepository({self.uri!r})"

    def _names(self, path: str, pattern: re.Pattern) -> list[str]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except NotADirectoryError:
            # Only "not a folder" means "nothing here": any other error (a remote store's
            # hiccup) must not read as an empty repository, or a server retires every version.
            return []
        names = (i.base_name for i in infos if i.type == pafs.FileType.Directory)
        return sorted(n for n in names if pattern.match(n))

    def models(self) -> list[str]:
        """Names of the models with at least a folder in the repository."""
        return self._names(self.path, _MODEL)

    def _numbers(self, name: str) -> list[int]:
        return sorted(int(n) for n in self._names(f"{self.path}/{name}", _VERSION))

    def versions(self, name: str) -> list[int]:
        """The complete versions of `name` (manifest written), ascending."""
        numbers = self._numbers(name)
        if not numbers:
            return []
        manifests = self.fs.get_file_info([f"{self.path}/{name}/{v}/{MANIFEST}" for v in numbers])
        return [v for v, info in zip(numbers, manifests, strict=True) if info.is_file]

    def latest(self, name: str) -> int | None:
        """The highest complete version of `name`, or None."""
        return max(self.versions(name), default=None)

    def select(self, name: str, policy: ServedModelConfig) -> list[int]:
        """The versions a server with `policy` serves, newest first (TF Serving's policies:
        the latest N, all, or specific versions that are present)."""
        present = sorted(self.versions(name), reverse=True)
        if policy.policy == "specific":
            return [v for v in present if v in set(policy.versions)]
        return present if policy.policy == "all" else present[: policy.latest]

    def version(self, name: str, version: int | None = None) -> ExportedVersion:
        """The given (default: the latest complete) version of `name`; RepositoryError when
        there is none."""
        if version is None:
            version = self.latest(name)
            if version is None:
                raise RepositoryError(
                    f"no exported version of model {name!r} in {self.uri}; "
                    "run `make train` first (or check the model name)"
                )
        elif int(version) not in self.versions(name):
            raise RepositoryError(f"model {name!r} has no version {version} in {self.uri}")
        return ExportedVersion(self, name, int(version))

    def export(
        self,
        name: str,
        session,
        signatures: Mapping,
        contents: VersionContents,
        attempts: int = 5,
    ) -> ExportedVersion:
        """Publish the graph of `session` with its `contents` as a new version of `name`."""
        from engine.saved import serialize

        files = serialize(session, signatures, assets=encode_assets(contents))
        return self.publish(name, files, attempts)

    def publish(self, name: str, files: Mapping[str, bytes], attempts: int = 5) -> ExportedVersion:
        """Write a saved graph's files as the next version of `name`, whole or not at all."""
        if not _MODEL.match(name):
            raise RepositoryError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
        if MANIFEST not in files:
            raise RepositoryError("a version needs its manifest.json (engine.saved.serialize)")
        last: Exception | None = None
        for _ in range(attempts):
            version = max(self._numbers(name), default=0) + 1
            try:
                self._write(name, version, files)
                return ExportedVersion(self, name, version)
            except FileExistsError as exc:  # another export claimed the number first
                last = exc
        raise RepositoryError(f"could not claim a new version of {name!r} in {self.uri}: {last}")

    def _write(self, name: str, version: int, files: Mapping[str, bytes]) -> None:
        target = f"{self.path}/{name}/{version}"
        ordered = sorted(rel for rel in files if rel != MANIFEST) + [MANIFEST]
        if not _atomic_rename(self.fs):
            if self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                raise FileExistsError(target)
            for rel in ordered:
                write_bytes(self.fs, f"{target}/{rel}", files[rel])
            return
        staging = f"{self.path}/{name}/.{version}.staging-{uuid.uuid4().hex[:12]}"
        try:
            for rel in ordered:
                write_bytes(self.fs, f"{staging}/{rel}", files[rel])
            if self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                raise FileExistsError(target)
            try:
                self.fs.move(staging, target)  # refused when the target exists and is not empty
            except OSError as exc:
                if self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                    raise FileExistsError(target) from exc
                raise
        finally:
            if self.fs.get_file_info(staging).type != pafs.FileType.NotFound:
                self.fs.delete_dir(staging)
