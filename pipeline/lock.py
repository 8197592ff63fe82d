"""An exclusive, non-blocking lock file, so two daily runs never overlap.

`fcntl.flock` on `<data_root>/.locks/<name>.lock`: the kernel drops the lock when the holder
exits, even on a crash, so a stale file never blocks the next run.  flock works on local
filesystems (and most NFS setups); data roots on HDFS or S3 need an external scheduler lock.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["LockHeld", "exclusive_lock"]


class LockHeld(RuntimeError):
    """Another process holds the lock."""


@contextmanager
def exclusive_lock(path: Path, holder: dict) -> Iterator[None]:
    """Hold the lock at `path` for the block; LockHeld (naming the holder) when it is taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        current = path.read_text().strip() or "unknown holder"
        os.close(fd)
        raise LockHeld(f"another daily run holds {path} ({current}); nothing was done") from None
    try:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({**holder, "pid": os.getpid(), "since": stamp}).encode())
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
