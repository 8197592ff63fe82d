"""Appending accepted input (`POST /v1/events`, `/v1/items`) to a raw log folder that Spark
jobs read (the ETL, `features.stream`), durably and never half-written.

Lines go to a spool file under `<folder>/_spool/` (Spark's file listing skips names starting
with `_`), one write and one fsync per `append`, so a line is on disk before the caller
answers. Every `roll_s` seconds, every `roll_events` lines and on `close`, the spool is renamed
into `<folder>/online-<utc yyyymmddTHHMMSS>-<pid>-<seq>.jsonl`: a reader sees a whole file or
none, and a streaming reader, which reads each file once, never sees one grow. Each spool is
held under an exclusive `flock`; a writer starting up rolls the spools no live process holds
(left by a crash), without a torn last line.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["SPOOL", "RawLogWriter"]

SPOOL = "_spool"


class RawLogWriter:
    """The appender of one raw log folder (`<raw>/events`): thread-safe, local filesystem only
    (a ValueError names any other URI)."""

    def __init__(self, folder: str, *, roll_s: float = 5.0, roll_events: int = 50_000) -> None:
        self.folder = _local_folder(folder)
        self.spool_dir = self.folder / SPOOL
        self.roll_s, self.roll_events = roll_s, roll_events
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._spool: Path | None = None
        self._lines = 0
        self._opened = 0.0
        self._seq = 0
        self._closed = False
        with self._lock:
            self.recovered = self._recover()
        self._stop = threading.Event()
        # Rolls a spool that stopped growing: its lines must reach readers within roll_s.
        self._timer = threading.Thread(target=self._roll_when_due, name="raw-log-roll", daemon=True)
        self._timer.start()

    def append(self, lines: Sequence[str]) -> None:
        """Append `lines` (no line breaks inside) durably: on disk when this returns."""
        if not lines:
            return
        for line in lines:
            if "\n" in line or "\r" in line:
                raise ValueError(f"a raw log line holds a line break: {line[:80]!r}")
        data = "".join(f"{line}\n" for line in lines).encode("utf-8")
        with self._lock:
            if self._closed:
                raise ValueError(f"the raw log writer of {self.folder} is closed")
            if self._fd is None:
                self._open_spool()
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
            self._lines += len(lines)
            if self._lines >= self.roll_events or time.monotonic() - self._opened >= self.roll_s:
                self._roll()

    def roll(self) -> Path | None:
        """Move the spool's lines into the folder now; the file written, if any."""
        with self._lock:
            return self._roll()

    def close(self) -> None:
        """Roll what is spooled and stop; later appends are refused."""
        self._stop.set()
        if self._timer is not threading.current_thread():
            self._timer.join()
        with self._lock:
            if not self._closed:
                self._roll()
                self._closed = True

    def __enter__(self) -> RawLogWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- under the lock ----------------------------------------------------------------------

    def _open_spool(self) -> None:
        path = self.spool_dir / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        _fsync_dir(self.spool_dir)
        self._fd, self._spool, self._lines, self._opened = fd, path, 0, time.monotonic()

    def _roll(self) -> Path | None:
        if self._fd is None:
            return None
        fd, spool = self._fd, self._spool
        self._fd = self._spool = None
        try:
            return self._publish(spool) if self._lines else _unlink(spool)
        finally:
            os.close(fd)  # after the rename: the lock is held until the file is in place

    def _publish(self, spool: Path) -> Path:
        while True:
            self._seq += 1
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            target = self.folder / f"online-{stamp}-{os.getpid()}-{self._seq}.jsonl"
            if not target.exists():
                break
        os.rename(spool, target)
        _fsync_dir(self.folder)
        return target

    def _recover(self) -> list[Path]:
        """Roll the spools of dead writers (their lock is free), dropping a torn last line
        (its append never returned, so no caller was told it was kept)."""
        done = []
        for spool in sorted(self.spool_dir.glob("*.jsonl")):
            try:
                fd = os.open(spool, os.O_RDWR)
            except FileNotFoundError:  # another writer starting up took it
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a live writer's
                    continue
                if not spool.exists():  # rolled by another writer before we locked it
                    continue
                whole = _complete_length(fd)
                os.ftruncate(fd, whole)
                os.fsync(fd)
                if whole:
                    done.append(self._publish(spool))
                else:
                    _unlink(spool)
            finally:
                os.close(fd)
        return done

    def _roll_when_due(self) -> None:
        while not self._stop.wait(min(self.roll_s, 1.0) / 2):
            with self._lock:
                if self._fd is not None and time.monotonic() - self._opened >= self.roll_s:
                    self._roll()


def _local_folder(folder: str) -> Path:
    parsed = urlparse(folder)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else folder).absolute()
    if len(parsed.scheme) == 1:  # a Windows drive letter, not a scheme
        return Path(folder).absolute()
    raise ValueError(
        f"the events API appends to a local raw log; {folder} is on {parsed.scheme}:// (set "
        "paths.data_root to a local path, or have the logging system write the raw logs there)"
    )


def _complete_length(fd: int) -> int:
    """The length of the file up to and including its last line break."""
    size = os.fstat(fd).st_size
    end, chunk = size, 65536
    while end > 0:
        start = max(0, end - chunk)
        block = os.pread(fd, end - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
    return None
