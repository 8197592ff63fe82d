"""The model repository: where model versions are published and found (data-contracts §4).

Layout, TF Serving's: `<root>/<model>/<version>/`, `<version>` an integer of at most 18
digits. A version is complete when its `manifest.json` is there; the manifest is written
last, so a reader never takes a version that is still being written:

- on filesystems that rename atomically (local disks, HDFS) the version is written into a
  hidden staging folder beside it and renamed into place whole;
- on object stores (S3 and compatible), where a rename is a copy, the files go straight to
  the version's prefix and the manifest, which lists every file's checksum, is the completion
  marker written last. A publisher first claims the version number with an object
  `<model>/.claims/<version>.<token>` and goes ahead only when its claim is the only one and
  the version's prefix is still empty (the store's listings being strongly consistent, as
  S3's are, two racing publishers cannot both go ahead); the claim is removed afterwards.

`ModelRepository` is the one place that knows this layout: listing models and versions, the
serving version policies, publishing. `ModelRepository.export` is the one writer of a
version's contents and `ExportedVersion.open()` the one reader (`peppercorn.version_assets`).
Everything goes through `pyarrow.fs` (`peppercorn.fs`), so the root may be a local path or a
`file://`, `s3://`/`s3a://` or `hdfs://` URI. A root that does not exist yet is an empty
repository; one that cannot be read (an unreachable endpoint, a bucket that does not exist,
no permission) raises `peppercorn.fs.StorageError` rather than looking empty.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from peppercorn.config import ServedModelConfig
from peppercorn.finite import non_finite_report
from peppercorn.fs import (
    StorageError,
    filesystem,
    is_object_store,
    join,
    read_bytes,
    write_bytes,
)
from peppercorn.loaded_version import LoadedVersion
from peppercorn.version_assets import VersionContents, encode_assets, load_files

__all__ = [
    "MANIFEST",
    "STALE_AFTER_SECONDS",
    "ExportedVersion",
    "ModelRepository",
    "RepositoryError",
]

MANIFEST = "manifest.json"
log = logging.getLogger(__name__)
_VERSION = re.compile(r"^[0-9]{1,18}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CLAIMS = ".claims"  # object stores: `<model>/.claims/<version>.<token>`, one per publisher
_CLAIM_WAITS, _CLAIM_WAIT_S = 25, 0.04  # how long the lowest claim waits for the others
_STAGING = re.compile(r"^\.[0-9]{1,18}\.staging-[0-9a-f]+$")
# A killed export leaves its staging folder (or claim) behind; one younger than this may
# belong to an export still running, as with `peppercorn.storage.recover_leftovers`.
STALE_AFTER_SECONDS = 6 * 3600


class RepositoryError(ValueError):
    """A model or version that is not in the repository, or a name it cannot hold."""


def _atomic_rename(fs: pafs.FileSystem) -> bool:
    return fs.type_name in ("local", "hdfs")


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

    def checksum(self) -> str:
        """`sha256:<hex>` of the version's manifest, which lists every file's checksum: one
        value that changes whenever any file of the version does."""
        import hashlib

        manifest = read_bytes(self.repository.fs, f"{self._path}/{MANIFEST}")
        return f"sha256:{hashlib.sha256(manifest).hexdigest()}"

    def fingerprint(self) -> tuple:
        """(file, size, mtime[, ETag]) of every file: changes whenever the version's files do.

        Object stores keep modification times to the second, so there each file's ETag (one
        HEAD request per file) tells a same-size rewrite within that second apart."""
        fs = self.repository.fs
        try:
            infos = fs.get_file_info(pafs.FileSelector(self._path, recursive=True))
            if not is_object_store(fs):
                return tuple(sorted((i.path, i.size, i.mtime_ns) for i in infos))
            return tuple(sorted((i.path, i.size, i.mtime_ns, _etag(fs, i)) for i in infos))
        except OSError:
            return ("<unreadable>",)

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


def _etag(fs: pafs.FileSystem, info: pafs.FileInfo) -> bytes | None:
    if info.type != pafs.FileType.File:
        return None
    with fs.open_input_stream(info.path) as stream:  # a HEAD request; nothing is read
        return stream.metadata().get("ETag")


class ModelRepository:
    """The versions of every model under one root (a local path or a URI).

    Listing methods raise `peppercorn.fs.StorageError` where the root cannot be read."""

    def __init__(self, uri: str) -> None:
        self.uri = str(uri)
        self.fs, self.path = filesystem(self.uri)

    def __repr__(self) -> str:
        return f"ModelRepository({self.uri!r})"

    def _list(self, path: str) -> list[pafs.FileInfo]:
        """The entries right under `path`; none where it does not exist (yet)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except NotADirectoryError:
            # Only "not a folder" means "nothing here": any other error (a remote store's
            # hiccup) must not read as an empty repository, or a server retires every version.
            return []
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot list {path}: {exc}") from exc
        if not infos and is_object_store(self.fs):
            # pyarrow lists a bucket that does not exist as empty: a misspelt bucket name
            # must not look like a repository without models either.
            bucket = self.path.split("/", 1)[0]
            try:
                missing = self.fs.get_file_info(bucket).type == pafs.FileType.NotFound
            except OSError as exc:
                raise StorageError(f"{self.uri}: cannot reach bucket {bucket}: {exc}") from exc
            if missing:
                raise StorageError(f"{self.uri}: bucket {bucket!r} does not exist")
        return infos

    def _names(self, path: str, pattern: re.Pattern) -> list[str]:
        names = (i.base_name for i in self._list(path) if i.type == pafs.FileType.Directory)
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
        paths = [f"{self.path}/{name}/{v}/{MANIFEST}" for v in numbers]
        try:
            manifests = self.fs.get_file_info(paths)
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot read the manifests of {name}: {exc}") from exc
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

        weights = {v.name: session.get_value(v) for v in session.graph.variables}
        problem = non_finite_report(weights)
        if problem is not None:  # a diverged model must not become a version anyone loads
            raise RepositoryError(f"refusing to export {name!r}: non-finite weights: {problem}")
        files = serialize(session, signatures, assets=encode_assets(contents))
        return self.publish(name, files, attempts)

    def publish(self, name: str, files: Mapping[str, bytes], attempts: int = 5) -> ExportedVersion:
        """Write a saved graph's files as the next version of `name`, whole or not at all
        (numbered above every version folder, complete or not, and every claim on a number)."""
        if not _MODEL.match(name):
            raise RepositoryError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
        if MANIFEST not in files:
            raise RepositoryError("a version needs its manifest.json (engine.saved.serialize)")
        self.remove_leftovers(name)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:  # publishers that all backed off from one number must not meet again
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
            claimed = {} if _atomic_rename(self.fs) else self._claims(name)
            version = max([*self._numbers(name), *claimed], default=0) + 1
            try:
                self._write(name, version, files)
                return ExportedVersion(self, name, version)
            except FileExistsError as exc:  # another export claimed the number first
                last = exc
        raise RepositoryError(f"could not claim a new version of {name!r} in {self.uri}: {last}")

    def remove_leftovers(self, name: str, stale_after: float = STALE_AFTER_SECONDS) -> list[str]:
        """Delete the staging folders and claims of `name` that killed exports left, once
        older than `stale_after` seconds; returns their paths (every publish calls this)."""
        now = time.time()

        def stale(info: pafs.FileInfo) -> bool:
            return info.mtime is not None and now - info.mtime.timestamp() > stale_after

        removed = []
        for info in self._list(f"{self.path}/{name}"):
            staging = info.type == pafs.FileType.Directory and _STAGING.match(info.base_name)
            if staging and stale(info):
                self.fs.delete_dir(info.path)
                removed.append(info.path)
        for paths in self._claims(name).values():
            for path in paths:
                if stale(self.fs.get_file_info(path)):
                    self.fs.delete_file(path)
                    removed.append(path)
        for path in removed:
            log.warning("model repository: removed %s, left by an export that did not finish", path)
        return removed

    def _claims(self, name: str) -> dict[int, list[str]]:
        """Version -> the paths of the claims on it (`<model>/.claims/`; object stores)."""
        claims: dict[int, list[str]] = {}
        for info in self._list(f"{self.path}/{name}/{_CLAIMS}"):
            number, _, token = info.base_name.partition(".")
            if info.type == pafs.FileType.File and _VERSION.match(number) and token:
                claims.setdefault(int(number), []).append(info.path)
        return claims

    def _sole_claim(self, name: str, version: int, claim: str) -> bool:
        """Whether `claim`, already written, is or becomes the only claim on `version`.

        Listed only after the claim is written, so of two publishers racing for a number the
        later to list sees the other's claim. Each that sees another backs off, except the
        lowest claim, which waits a little for the others to give way: racers that all see
        each other do not all back off."""
        for _ in range(_CLAIM_WAITS):
            claims = self._claims(name).get(version, [])
            if claims == [claim]:
                return True
            if min(claims, default=claim) != claim or claim not in claims:
                return False
            time.sleep(_CLAIM_WAIT_S)
        return False

    def _write(self, name: str, version: int, files: Mapping[str, bytes]) -> None:
        target = f"{self.path}/{name}/{version}"
        ordered = sorted(rel for rel in files if rel != MANIFEST) + [MANIFEST]
        if not _atomic_rename(self.fs):
            claim = f"{self.path}/{name}/{_CLAIMS}/{version}.{uuid.uuid4().hex}"
            write_bytes(self.fs, claim, b"")
            try:
                if not self._sole_claim(name, version, claim):
                    raise FileExistsError(f"{target} (claimed by another publisher)")
                # A claim is removed only once its files are written (or given up): the
                # folder is looked at after the claims for that case.
                if self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                    raise FileExistsError(target)
                for rel in ordered:
                    write_bytes(self.fs, f"{target}/{rel}", files[rel])
            finally:
                self.fs.delete_file(claim)
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
