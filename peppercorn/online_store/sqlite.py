"""The embedded online store: one SQLite file in WAL mode (stdlib `sqlite3`).

Many threads of one process (one connection each) and several processes (the server and a
streaming job's driver) may read and write the same file: WAL lets readers go on while one
writer appends, and each write is one `BEGIN IMMEDIATE` transaction, so a reader sees a call's
events all or not at all. A writer waits for another one for at most `timeout_s`.

Tables: `events` (each user's kept events), `ids` (every unexpired event id, kept or trimmed,
with its version's rank: the duplicate rule needs them after a user's list dropped the event)
and `items`. The codec and the duplicate rule's order are shared with `redis.py`.

Both back ends follow one step-by-step reading of the interface's rules (the tests' reference
model): an event expired on arrival is as if never written; each id's winning version is
remembered until it expires, whether its user still keeps it or trimmed it, so a replay never
comes back. Being capped, a store departs from the pure function of the set of events in two
corners only: a version of an id arriving after its winner expired is taken as new, and an
earlier version replacing one that a user kept leaves that user one event short (of those it
trimmed before) until its next events arrive. Replays of one event never meet either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from peppercorn.online_store import Event, ItemState, StoreSize, StoreUnavailable

__all__ = ["SqliteStore", "decode_event", "encode_event", "event_rank", "winning_versions"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL,
    event TEXT NOT NULL, ts REAL NOT NULL, watch_seconds REAL, gift_value REAL);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts, event_id);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS ids (
    event_id TEXT PRIMARY KEY, ts REAL NOT NULL, digest INTEGER NOT NULL,
    user_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ids_ts ON ids (ts);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY, live INTEGER NOT NULL, content TEXT, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS items_updated ON items (updated);
"""
_EVENT_COLUMNS = "event_id, user_id, item_id, event, ts, watch_seconds, gift_value"
_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def encode_event(e: Event) -> str:
    """The event as canonical JSON (floats as floats, keys sorted), as Redis stores it."""
    fields = {
        "event_id": e.event_id,
        "user_id": e.user_id,
        "item_id": e.item_id,
        "event": e.event,
        "ts": float(e.ts),
        "watch_seconds": _number(e.watch_seconds),
        "gift_value": _number(e.gift_value),
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decode_event(text: str) -> Event:
    """The inverse of `encode_event`."""
    return Event(**json.loads(text))


def event_rank(e: Event) -> tuple[float, int]:
    """The duplicate rule's order among versions of one event id: the earlier `ts` wins; equal
    `ts` (and so equal `Event.key()`) falls to a digest of the whole event, a stand-in for the
    ETL's raw line that makes the winner independent of arrival order."""
    # repr of each field: exact for floats, unambiguous for strings; cheaper than the JSON.
    fields = (e.event_id, e.user_id, e.item_id, e.event, float(e.ts),
              _number(e.watch_seconds), _number(e.gift_value))  # fmt: skip
    digest = hashlib.sha1("\x1f".join(map(repr, fields)).encode()).hexdigest()
    return float(e.ts), int(digest[:12], 16)  # 48 bits: exact as a double in Redis's Lua


def winning_versions(events: Sequence[Event], cutoff: float) -> dict[str, tuple[Event, tuple]]:
    """Per event id, the winning version among a batch's unexpired events: (event, its
    `event_rank`)."""
    best: dict[str, tuple[Event, tuple[float, int]]] = {}
    for e in events:
        if not math.isfinite(e.ts):
            raise ValueError(f"event {e.event_id!r}: ts must be finite, got {e.ts!r}")
        if e.ts < cutoff:
            continue  # expired on arrival: as if never written
        rank = event_rank(e)
        if e.event_id not in best or rank < best[e.event_id][1]:
            best[e.event_id] = (e, rank)
    return best


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://") :]
    if "://" in path:
        raise ValueError(
            f"the SQLite online store needs a local file, got {path!r}: set online_store.path "
            "to a local path or use online_store.kind: redis"
        )
    return path


def _row_event(row: tuple) -> Event:
    return Event(*row)


def _row_item(row: tuple) -> ItemState:
    item_id, live, content, updated = row
    return ItemState(item_id, bool(live), None if content is None else json.loads(content), updated)


class SqliteStore:
    """The online store in one SQLite file (see the module docstring)."""

    def __init__(self, path: str, cfg) -> None:
        self.path = _local_path(str(path))
        self.ttl_s = float(cfg.ttl_s)
        self.events_per_user = int(cfg.events_per_user)
        self.timeout_s = float(cfg.timeout_s)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT below.
        conn = sqlite3.connect(
            self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file; cheap when set
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, no fsync
            tables = conn.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                " AND name IN ('events', 'ids', 'items')"
            ).fetchone()[0]
            if tables < 3:  # only then take the write lock; IMMEDIATE: creators take turns
                conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
        except BaseException:
            conn.close()
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # a forked child: the parent's connections are not ours
            self._local, self._connections, self._pid = threading.local(), [], os.getpid()
            self._lock = threading.Lock()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._conn()
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.IntegrityError):
            raise  # our bugs, not the store's unavailability
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"SQLite online store {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._guard() as conn:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # never leave this thread's connection mid-transaction
                    conn.execute("ROLLBACK")
                raise

    # -- the interface -------------------------------------------------------------------

    def append(self, events: Sequence[Event], now: float) -> int:
        """Add events (idempotent by event_id); the number of ids not held before."""
        cutoff = now - self.ttl_s
        best = winning_versions(events, cutoff)
        if not best:
            return 0
        added, touched, rows = 0, set(), []
        with self._transaction() as conn:
            held = {}
            ids = list(best)
            for i in range(0, len(ids), _CHUNK):  # one lookup per chunk, not per event
                chunk = ids[i : i + _CHUNK]
                held.update(
                    (row[0], row[1:])
                    for row in conn.execute(
                        "SELECT event_id, ts, digest, user_id FROM ids WHERE event_id IN"
                        f" ({','.join('?' * len(chunk))})",
                        chunk,
                    )
                )
            for event_id, (e, (ts, digest)) in best.items():
                old = held.get(event_id)
                if old is not None and old[0] >= cutoff and (old[0], old[1]) <= (ts, digest):
                    continue  # the held version wins (or is this one)
                added += old is None or old[0] < cutoff
                if old is not None:
                    touched.add(old[2])
                rows.append((event_id, e, ts, digest))
                touched.add(e.user_id)
            conn.executemany(
                "INSERT OR REPLACE INTO ids VALUES (?, ?, ?, ?)",
                [(event_id, ts, digest, e.user_id) for event_id, e, ts, digest in rows],
            )
            conn.executemany(
                f"INSERT OR REPLACE INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                [
                    (event_id, e.user_id, e.item_id, e.event, ts)
                    + (_number(e.watch_seconds), _number(e.gift_value))
                    for event_id, e, ts, _ in rows
                ],
            )
            users = sorted(touched)
            for i in range(0, len(users), _CHUNK):
                chunk = users[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    f"DELETE FROM events WHERE user_id IN ({marks}) AND ts < ?", (*chunk, cutoff)
                )
                # Trim only the users over the cap (most are not): one counting query.
                over = conn.execute(
                    f"SELECT user_id FROM events WHERE user_id IN ({marks})"
                    " GROUP BY user_id HAVING COUNT(*) > ?",
                    (*chunk, self.events_per_user),
                ).fetchall()
                for (user,) in over:
                    conn.execute(
                        "DELETE FROM events WHERE event_id IN (SELECT event_id FROM events"
                        " WHERE user_id = ? ORDER BY ts DESC, event_id DESC LIMIT -1 OFFSET ?)",
                        (user, self.events_per_user),
                    )
        return added

    def recent(self, user_ids: Sequence[str], now: float) -> dict[str, list[Event]]:
        """Each user's kept, unexpired events, newest first (users with none are absent)."""
        users = list(dict.fromkeys(user_ids))
        out: dict[str, list[Event]] = {}
        if not users:
            return out
        with self._transaction("DEFERRED") as conn:  # one snapshot across the chunks
            for i in range(0, len(users), _CHUNK):
                chunk = users[i : i + _CHUNK]
                rows = conn.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events WHERE user_id IN"
                    f" ({','.join('?' * len(chunk))}) AND ts >= ?"
                    " ORDER BY user_id, ts DESC, event_id DESC",
                    (*chunk, now - self.ttl_s),
                ).fetchall()
                for row in rows:
                    kept = out.setdefault(row[1], [])
                    if len(kept) < self.events_per_user:
                        kept.append(_row_event(row))
        return out

    def set_items(self, states: Sequence[ItemState], now: float) -> None:
        """Record rooms' states (the newest `updated` wins; ties keep the later write)."""
        cutoff = now - self.ttl_s
        rows = [
            (s.item_id, int(bool(s.live)), None if s.content is None else json.dumps(s.content))
            + (float(s.updated),)
            for s in states
            if s.updated >= cutoff  # expired on arrival: as if never written
        ]
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE SET"
                " live = excluded.live, content = excluded.content, updated = excluded.updated"
                " WHERE excluded.updated >= items.updated",
                rows,
            )

    def items(self, item_ids: Sequence[str], now: float) -> dict[str, ItemState]:
        """The unexpired states of these items (items with none are absent)."""
        ids = list(dict.fromkeys(item_ids))
        out: dict[str, ItemState] = {}
        if not ids:
            return out
        with self._transaction("DEFERRED") as conn:
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                rows = conn.execute(
                    "SELECT item_id, live, content, updated FROM items WHERE item_id IN"
                    f" ({','.join('?' * len(chunk))}) AND updated >= ?",
                    (*chunk, now - self.ttl_s),
                ).fetchall()
                out.update((row[0], _row_item(row)) for row in rows)
        return out

    def offline(self, now: float) -> set[str]:
        """Every item whose current, unexpired state is not live."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT item_id FROM items WHERE live = 0 AND updated >= ?", (now - self.ttl_s,)
            ).fetchall()
        return {row[0] for row in rows}

    def created(self, now: float) -> dict[str, ItemState]:
        """Every item whose current, unexpired state carries content."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT item_id, live, content, updated FROM items"
                " WHERE content IS NOT NULL AND updated >= ?",
                (now - self.ttl_s,),
            ).fetchall()
        return {row[0]: _row_item(row) for row in rows}

    def expire(self, now: float) -> int:
        """Drop what has expired; the number of kept events and item states dropped."""
        cutoff = now - self.ttl_s
        with self._transaction() as conn:
            events = conn.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM ids WHERE ts < ?", (cutoff,))
            items = conn.execute("DELETE FROM items WHERE updated < ?", (cutoff,)).rowcount
        return events + items

    def size(self, now: float) -> StoreSize:
        """Users with unexpired events, those events, and items with an unexpired state."""
        cutoff = now - self.ttl_s
        with self._transaction("DEFERRED") as conn:
            users, events = conn.execute(
                "SELECT COUNT(DISTINCT user_id), COUNT(*) FROM events WHERE ts >= ?", (cutoff,)
            ).fetchone()
            items = conn.execute(
                "SELECT COUNT(*) FROM items WHERE updated >= ?", (cutoff,)
            ).fetchone()[0]
            ids = conn.execute("SELECT COUNT(*) FROM ids WHERE ts >= ?", (cutoff,)).fetchone()[0]
            files = (self.path, self.path + "-wal")
            nbytes = sum(os.path.getsize(f) for f in files if os.path.exists(f))
        return StoreSize(users, events, items, {"path": self.path, "ids": ids, "bytes": nbytes})

    def ping(self) -> None:
        """Return when the file answers; StoreUnavailable when it does not."""
        with self._guard() as conn:
            conn.execute("SELECT 1 FROM events LIMIT 1").fetchall()

    def close(self) -> None:
        """Close every thread's connection; a later call opens new ones."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for conn in connections:
            conn.close()
