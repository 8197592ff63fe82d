"""Filesystem operations on dataset paths and URIs, through Hadoop's FileSystem API.

Dataset roots may be local paths or `file://`, `hdfs://`, `s3a://` URIs, so every
operation goes through the JVM's Hadoop FileSystem of the active SparkSession rather
than Python's `os`.  `atomic_replace` gives the write-elsewhere-then-swap discipline
that keeps a crashed or repeated job from leaving a half-written dataset visible.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable

__all__ = [
    "STALE_AFTER_SECONDS",
    "atomic_replace",
    "delete",
    "exists",
    "list_dir",
    "qualify",
    "read_text",
    "recover_leftovers",
    "rename",
    "write_text",
]


def _fs_and_path(spark, uri: str):
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    return fs, path


def qualify(spark, uri: str) -> str:
    """The fully qualified form of `uri` (a relative local path becomes `file:/abs/...`)."""
    fs, path = _fs_and_path(spark, uri)
    return str(fs.makeQualified(path).toString())


def exists(spark, uri: str) -> bool:
    """Whether a file or directory exists at `uri`."""
    fs, path = _fs_and_path(spark, uri)
    return bool(fs.exists(path))


def delete(spark, uri: str) -> None:
    """Delete a file or directory tree; a missing path is not an error."""
    fs, path = _fs_and_path(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def rename(spark, src: str, dst: str) -> None:
    """Rename `src` to `dst` (same filesystem); raises OSError when the filesystem refuses."""
    fs, src_path = _fs_and_path(spark, src)
    _, dst_path = _fs_and_path(spark, dst)
    parent = dst_path.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    if not fs.rename(src_path, dst_path):
        raise OSError(f"rename refused by the filesystem: {src} -> {dst}")


def list_dir(spark, uri: str) -> list[str]:
    """Names (not paths) of the entries directly under `uri`, sorted."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        return []
    return sorted(str(status.getPath().getName()) for status in fs.listStatus(path))


def write_text(spark, uri: str, text: str) -> None:
    """Write a small text file (a summary, a manifest) atomically: temp file, then rename."""
    fs, path = _fs_and_path(spark, uri)
    parent = path.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    tmp = spark._jvm.org.apache.hadoop.fs.Path(parent, f".{path.getName()}.{uuid.uuid4().hex}.tmp")
    stream = fs.create(tmp, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    if fs.exists(path):
        fs.delete(path, False)
    if not fs.rename(tmp, path):
        fs.delete(tmp, False)
        raise OSError(f"could not move {tmp} into place at {uri}")


def read_text(spark, uri: str) -> str:
    """Read a small text file written by `write_text` (or any UTF-8 file)."""
    fs, path = _fs_and_path(spark, uri)
    if not fs.exists(path):
        raise FileNotFoundError(uri)
    stream = fs.open(path)
    try:
        reader = spark._jvm.java.io.BufferedReader(
            spark._jvm.java.io.InputStreamReader(stream, "UTF-8")
        )
        return "\n".join(iter(reader.readLine, None))
    finally:
        stream.close()


# Leftovers younger than this may belong to a job still running beside this one.
STALE_AFTER_SECONDS = 6 * 3600


def recover_leftovers(spark, final_uri: str, stale_after: float = STALE_AFTER_SECONDS) -> list:
    """Repair what a hard-killed `atomic_replace` of `final_uri` left; returns what it did.

    Killed between its two renames, a swap leaves no output but the previous one under
    `<name>.retired-<token>`: that is renamed back (the newest, if several). Staging and
    retired folders older than `stale_after` seconds are deleted; younger ones are left to
    whatever job may still own them.
    """
    fs, path = _fs_and_path(spark, final_uri.rstrip("/"))
    parent, name = path.getParent(), path.getName()
    if parent is None or not fs.exists(parent):
        return []
    leftovers = [
        st
        for st in fs.listStatus(parent)
        if str(st.getPath().getName()).startswith((f"{name}.staging-", f"{name}.retired-"))
    ]
    done = []
    retired = sorted(
        (st for st in leftovers if ".retired-" in str(st.getPath().getName())),
        key=lambda st: st.getModificationTime(),
    )
    if retired and not fs.exists(path):
        newest = retired.pop()
        if not fs.rename(newest.getPath(), path):
            raise OSError(f"could not restore {newest.getPath()} to {final_uri}")
        done.append(f"restored {newest.getPath().getName()} to {name}")
        leftovers.remove(newest)
    now_ms = time.time() * 1000.0
    for st in leftovers:
        if now_ms - st.getModificationTime() > stale_after * 1000.0:
            fs.delete(st.getPath(), True)
            done.append(f"deleted stale {st.getPath().getName()}")
    for line in done:
        print(f"storage: {line}", file=sys.stderr)
    return done


def atomic_replace(spark, final_uri: str, write: Callable[[str], None]) -> None:
    """Run `write(staging_uri)`, then swap the staging output into `final_uri`.

    Readers see either the previous complete output or the new complete output,
    never a partial one: the staging directory is a sibling, so the swap is a
    rename on the same filesystem (atomic on HDFS and local disks; on S3 a rename
    is a copy, so S3 users should point data_root at a committer-backed store).
    A failed `write` leaves the previous output untouched, and what a hard kill left behind
    is repaired first (`recover_leftovers`).
    """
    recover_leftovers(spark, final_uri)
    token = uuid.uuid4().hex[:12]
    base = final_uri.rstrip("/")
    staging = f"{base}.staging-{token}"
    retired = f"{base}.retired-{token}"
    try:
        write(staging)
    except BaseException:
        delete(spark, staging)
        raise
    had_previous = exists(spark, base)
    if had_previous:
        rename(spark, base, retired)
    try:
        rename(spark, staging, base)
    except BaseException:
        if had_previous:
            rename(spark, retired, base)
        delete(spark, staging)
        raise
    if had_previous:
        delete(spark, retired)
