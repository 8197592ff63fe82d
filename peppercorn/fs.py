"""One way to reach a path or URI from Python: `pyarrow.fs`.

Local paths, `file://`, `s3://` (and Hadoop's spellings `s3a://` / `s3n://`), `hdfs://` and
whatever else pyarrow knows (`gs://`, `abfs://`) resolve to a `(FileSystem, path)` pair, so a
dataset root or a model repository reads and writes the same way wherever it lives. Spark jobs
keep using Hadoop's own FileSystem (`peppercorn.storage`); this is for the Python processes
(training, serving, batch scoring inside executors).

S3 settings come from the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_REGION`), plus `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` for an S3-compatible server
(MinIO, Ceph, moto) — which pyarrow itself does not read — or URI query parameters
(`s3://bucket/models?endpoint_override=host:9000&scheme=http`, also `region=`). `s3://`,
`s3a://` and `s3n://` name the same objects.

On object stores (S3, GCS, Azure) there are no directories: `write_bytes` writes the object and
nothing else (no directory markers), small objects in one request. Filesystems are cached per
location and settings; at interpreter exit the cache is dropped before pyarrow finalizes its
S3 support (its own `atexit` hook), so no S3 client of ours outlives the AWS SDK.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow.fs as pafs

__all__ = [
    "StorageError",
    "filesystem",
    "is_local",
    "is_object_store",
    "join",
    "read_bytes",
    "write_bytes",
]

_S3_SCHEMES = ("s3", "s3a", "s3n")
_OBJECT_STORES = ("s3", "gcs", "abfs")  # pyarrow's `FileSystem.type_name`s without directories
# What, beside the endpoint settings, decides which S3 client a process gets.
_S3_IDENTITY = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")
_cache: dict[tuple, pafs.FileSystem] = {}
_cache_lock = threading.Lock()


class StorageError(OSError):
    """A path or URI that cannot be reached; the message names it and why."""


def is_local(uri: str) -> bool:
    """Whether `uri` is a local path or a `file:` URI."""
    return uri.startswith("file:") or "://" not in uri


def is_object_store(fs: pafs.FileSystem) -> bool:
    """Whether `fs` is an object store (S3, GCS, Azure): no directories, no atomic rename,
    paths are `bucket/key`."""
    return fs.type_name in _OBJECT_STORES


def join(base: str, *parts: str) -> str:
    """Join path segments onto a local path or a URI (before any `?query`)."""
    head, sep, query = base.partition("?")
    out = head.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return f"{out}{sep}{query}"


def _s3_settings(query: dict[str, str]) -> tuple[str, str, str]:
    """(endpoint host:port or "", scheme, region or "") from the URI's query, else the
    environment."""
    endpoint = (
        query.get("endpoint_override")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ""
    )
    scheme = query.get("scheme", "")
    if "://" in endpoint:
        parsed = urlsplit(endpoint)
        scheme, endpoint = scheme or parsed.scheme, parsed.netloc
    region = (
        query.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or ""
    )
    return endpoint, scheme or "https", region


def _s3(bucket: str, endpoint: str, scheme: str, region: str) -> pafs.FileSystem:
    # allow_delayed_open: an object smaller than one part is written with one PutObject
    # instead of a three-request multipart upload.
    if not endpoint:
        # Real AWS: the bucket's own region, as `FileSystem.from_uri` would find it.
        return pafs.S3FileSystem(
            region=region or pafs.resolve_s3_region(bucket), allow_delayed_open=True
        )
    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        scheme=scheme,
        region=region or "us-east-1",
        allow_delayed_open=True,
    )


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem holding `uri` and the path to pass it (filesystems are cached)."""
    if uri.startswith("file:"):
        return pafs.LocalFileSystem(), str(Path(urlsplit(uri).path).resolve())
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    parts = urlsplit(uri)
    scheme, query = parts.scheme.lower(), dict(parse_qsl(parts.query))
    path = f"{parts.netloc}{parts.path}".rstrip("/")
    if scheme in _S3_SCHEMES:
        settings = _s3_settings(query)
        # One client per endpoint settings and credentials; the bucket matters only where
        # its region is looked up (real AWS, no region given).
        bucket = "" if settings[0] or settings[2] else parts.netloc
        key: tuple = ("s3", bucket, settings, *(os.environ.get(k) for k in _S3_IDENTITY))
    else:
        key = (scheme, parts.netloc, tuple(sorted(query.items())))
    with _cache_lock:
        fs = _cache.get(key)
        if fs is None:
            try:
                if scheme in _S3_SCHEMES:
                    fs = _s3(parts.netloc, *settings)
                else:
                    fs, _ = pafs.FileSystem.from_uri(uri.partition("?")[0])
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise StorageError(f"{uri}: cannot open this filesystem: {exc}") from None
            _cache[key] = fs
    # HDFS paths are absolute within the cluster; object stores take "bucket/key".
    return fs, (parts.path or "/") if scheme in ("hdfs", "viewfs") else path


class _Transfers:
    """Reads and writes in progress, so that interpreter exit lets them end first: pyarrow
    finalizing S3 under an upload still running in another thread (a daemon thread
    publishing a version, say) aborts the process ("terminate called without an active
    exception")."""

    def __init__(self) -> None:
        self._count, self._closing = 0, False
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            if self._closing:
                raise StorageError("the interpreter is exiting: no new transfer is started")
            self._count += 1

    def __exit__(self, *_) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def close(self, timeout_s: float) -> None:
        """Refuse new transfers and wait up to `timeout_s` for those running to end."""
        with self._changed:
            self._closing = True
            self._changed.wait_for(lambda: self._count == 0, timeout=timeout_s)


_transfers = _Transfers()
_EXIT_WAIT_S = 30.0  # how long interpreter exit waits for transfers still running


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    """The whole file at `path` (FileNotFoundError when absent)."""
    with _transfers, fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write `data` to `path`, creating parent directories where the filesystem has them."""
    parent = path.rsplit("/", 1)[0]
    with _transfers:
        if parent and parent != path and not is_object_store(fs):
            fs.create_dir(parent, recursive=True)
        with fs.open_output_stream(path) as stream:
            stream.write(data)


def _drop_filesystems() -> None:
    # atexit runs hooks last-registered first: this one, registered after `pyarrow.fs` was
    # imported, runs before pyarrow's `ensure_s3_finalized`. Daemon threads still run here,
    # so a transfer in progress can end before S3 goes away.
    _transfers.close(_EXIT_WAIT_S)
    with _cache_lock:
        _cache.clear()


atexit.register(_drop_filesystems)
