"""The online stores (peppercorn.online_store): the same tests for SQLite and a real Redis.

Oracles: hand-worked examples; a dict-based reference model of the interface's rules, driven
by hypothesis through interleavings of append, set_items and expire; and the state as a pure
function of the set of events (any order, batching or repetition gives the same state).

Trimming makes the reference model step by step: a user keeps only its newest
`events_per_user`, and the ids of events trimmed or kept are remembered until they expire.
Times sit a million seconds ahead of the clock, so Redis's own expiry (PXAT, on the wall
clock) never fires during a test; one Redis test checks that it does fire.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peppercorn.config import OnlineStoreConfig
from peppercorn.online_store import Event, ItemState, StoreUnavailable, open_store
from peppercorn.online_store.sqlite import SqliteStore
from tests.redis_server import RedisServer, redis_server, require_redis_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
TTL, L = 100.0, 3
BASE = float(int(time.time()) + 1_000_000)
USERS, ITEMS, IDS = ["u0", "u1", "u2"], ["i0", "i1", "i2", "i3"], [f"e{i}" for i in range(10)]
KINDS = ["impression", "click", "watch", "gift", "follow"]
_names = itertools.count()


def event(event_id: str, t: int) -> Event:
    """The event `event_id` stamped BASE + t; its other fields follow from (id, t), so two
    versions of one id with one ts are the same event (the tie-break is tested by hand)."""
    h = zlib.crc32(f"{event_id}/{t}".encode())
    kind = KINDS[h % 5]
    return Event(
        event_id, USERS[(h >> 3) % 3], ITEMS[(h >> 5) % 4], kind, BASE + t,
        watch_seconds=float(h % 90) if kind == "watch" else None,
        gift_value=(h % 7) / 2 if kind == "gift" else None,
    )  # fmt: skip


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request, tmp_path):
    """A factory of fresh, empty stores of one kind (`**cfg` overrides the test config)."""
    url = None
    if request.param == "redis":
        require_redis_server()
        url = request.getfixturevalue("redis_server").url
    opened = []

    def make(**cfg):
        name = f"t{next(_names)}"
        fields = {"ttl_s": TTL, "events_per_user": L, "timeout_s": 2.0} | cfg
        config = OnlineStoreConfig(key_prefix=name, **fields)
        if url is None:
            store = SqliteStore(str(tmp_path / name / "store.sqlite"), config)
        else:
            from peppercorn.online_store.redis import RedisStore

            store = RedisStore(url, config)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store):
    return make_store()


class Reference:
    """The rules of `peppercorn.online_store`, in dicts."""

    def __init__(self, ttl: float = TTL, per_user: int = L) -> None:
        self.ttl, self.per_user = ttl, per_user
        self.ids: dict[str, Event] = {}  # every unexpired id's winning version
        self.kept: dict[str, dict[str, Event]] = {}  # user -> id -> event
        self.states: dict[str, ItemState] = {}

    def append(self, events, now):
        cutoff, best = now - self.ttl, {}
        for e in events:
            if e.ts >= cutoff and (e.event_id not in best or e.ts < best[e.event_id].ts):
                best[e.event_id] = e
        added, touched = 0, set()
        for event_id, e in best.items():
            old = self.ids.get(event_id)
            if old is not None and cutoff <= old.ts <= e.ts:
                continue
            added += old is None or old.ts < cutoff
            if old is not None:
                self.kept.get(old.user_id, {}).pop(event_id, None)
                touched.add(old.user_id)
            self.ids[event_id] = e
            self.kept.setdefault(e.user_id, {})[event_id] = e
            touched.add(e.user_id)
        for user in touched:
            self.kept[user] = {e.event_id: e for e in self._newest(user, cutoff)}
        return added

    def _newest(self, user, cutoff):
        events = [e for e in self.kept.get(user, {}).values() if e.ts >= cutoff]
        return sorted(events, key=Event.key, reverse=True)[: self.per_user]

    def recent(self, now):
        return {
            u: self._newest(u, now - self.ttl) for u in USERS if self._newest(u, now - self.ttl)
        }

    def set_items(self, states, now):
        for s in states:
            current = self.states.get(s.item_id)
            if s.updated >= now - self.ttl and (current is None or s.updated >= current.updated):
                self.states[s.item_id] = s

    def items(self, now):
        return {i: s for i, s in self.states.items() if s.updated >= now - self.ttl}

    def expire(self, now):
        cutoff, dropped = now - self.ttl, 0
        for events in self.kept.values():
            gone = [i for i, e in events.items() if e.ts < cutoff]
            dropped += len(gone)
            for event_id in gone:
                del events[event_id]
        self.ids = {i: e for i, e in self.ids.items() if e.ts >= cutoff}
        gone = [i for i, s in self.states.items() if s.updated < cutoff]
        for item_id in gone:
            del self.states[item_id]
        return dropped + len(gone)


def assert_same(store, ref: Reference, now: float) -> None:
    """Every reader of the store answers as the reference does."""
    assert store.recent(USERS + ["nobody"], now) == ref.recent(now)
    items = ref.items(now)
    assert store.items(ITEMS + ["nothing"], now) == items
    assert store.offline(now) == {i for i, s in items.items() if not s.live}
    assert store.created(now) == {i: s for i, s in items.items() if s.content is not None}
    size = store.size(now)
    recent = ref.recent(now)
    assert (size.users, size.events, size.items) == (
        len(recent), sum(map(len, recent.values())), len(items)
    )  # fmt: skip


def state(store, now):
    return store.recent(USERS, now), store.items(ITEMS, now), store.size(now).events


# -- hand-worked examples -----------------------------------------------------------------


def test_recent_is_newest_first_by_ts_then_event_id_and_capped(store):
    now = BASE + 100
    events = [Event(i, "u", "r", "click", BASE + t) for i, t in
              [("a", 10), ("c", 20), ("b", 20), ("d", 30), ("e", 5)]]  # fmt: skip
    assert store.append(events, now) == 5
    assert [e.event_id for e in store.recent(["u"], now)["u"]] == ["d", "c", "b"]
    assert store.append(events[::-1], now) == 0  # trimmed ids are still known
    assert [e.event_id for e in store.recent(["u"], now)["u"]] == ["d", "c", "b"]
    assert store.recent([], now) == {} and store.append([], now) == 0


def test_a_duplicate_id_keeps_its_earliest_version_across_users(store):
    now = BASE + 100
    assert store.append([Event("x", "u1", "r1", "click", BASE + 50)], now) == 1
    assert store.append([Event("x", "u2", "r2", "watch", BASE + 40, watch_seconds=3.5)], now) == 0
    assert store.append([Event("x", "u3", "r3", "click", BASE + 60)], now) == 0
    got = store.recent(["u1", "u2", "u3"], now)
    assert got == {"u2": [Event("x", "u2", "r2", "watch", BASE + 40, watch_seconds=3.5)]}


def test_equal_ts_versions_resolve_the_same_whatever_the_order(make_store):
    now = BASE + 100
    a, b = Event("x", "u1", "r1", "click", BASE), Event("x", "u2", "r2", "click", BASE)
    first, second = make_store(), make_store()
    first.append([a], now), first.append([b], now)
    second.append([b, a], now)
    assert first.recent(["u1", "u2"], now) == second.recent(["u1", "u2"], now)
    assert len(first.recent(["u1", "u2"], now)) == 1


def test_expiry_by_the_events_own_ts(store):
    now = BASE + 200
    old, fresh = Event("o", "u", "r", "click", BASE + 99), Event("f", "u", "r", "click", BASE + 150)
    assert store.append([old, fresh], now) == 1  # `old` expired on arrival
    assert store.recent(["u"], now) == {"u": [fresh]}
    assert store.recent(["u"], BASE + 251) == {}  # hidden before anything drops it
    assert store.size(BASE + 251).users == 0
    assert store.expire(BASE + 251) == 1 and store.expire(BASE + 251) == 0
    # Once expired, the id is forgotten: a new, fresh version is a new event.
    assert store.append([Event("f", "u", "r", "click", BASE + 240)], BASE + 251) == 1


def test_item_state_newest_updated_wins_and_ties_keep_the_later_write(store):
    now = BASE + 100
    store.set_items([ItemState("a", True, None, BASE + 50), ItemState("a", False, None, BASE + 50)],
                    now)  # fmt: skip
    store.set_items([ItemState("a", True, {"category": "x"}, BASE + 40)], now)  # older: ignored
    store.set_items([ItemState("b", True, {"tags": ["y", "é"]}, BASE + 60)], now)
    store.set_items([ItemState("c", False, None, BASE - 1)], now)  # expired on arrival
    assert store.items(["a", "b", "c"], now) == {
        "a": ItemState("a", False, None, BASE + 50),
        "b": ItemState("b", True, {"tags": ["y", "é"]}, BASE + 60),
    }
    assert store.offline(now) == {"a"} and set(store.created(now)) == {"b"}
    assert store.items(["a", "b"], BASE + 155) == {"b": ItemState("b", True, {"tags": ["y", "é"]},
                                                                  BASE + 60)}  # fmt: skip
    assert store.expire(BASE + 155) == 1 and store.size(BASE + 155).items == 1


def test_odd_ids_and_optional_fields_round_trip(store):
    now = BASE + 100
    events = [
        Event("id with spaces:1", "user:with spaces", "room/ü", "gift", BASE + 1, gift_value=2.5),
        Event("ünï", "user:with spaces", "r", "watch", BASE + 2, watch_seconds=0.1),
        Event("3", "u", "r", "impression", BASE + 0.123456789),
    ]
    store.append(events, now)
    got = store.recent(["user:with spaces", "u"], now)
    assert got == {"user:with spaces": events[1::-1], "u": events[2:]}
    assert store.append(events, now) == 0


def test_open_store_picks_the_configured_kind(tmp_path):
    from peppercorn.online_store.redis import RedisStore

    sqlite = open_store(OnlineStoreConfig(), path=str(tmp_path / "a" / "store.sqlite"))
    assert isinstance(sqlite, SqliteStore)
    sqlite.ping(), sqlite.close()
    assert (tmp_path / "a" / "store.sqlite").is_file()
    cfg = OnlineStoreConfig(kind="redis", redis_url="redis://:pw@127.0.0.1:1/2")
    assert isinstance(open_store(cfg), RedisStore)  # connects on first use, not here
    with pytest.raises(ValueError, match="local file"):
        SqliteStore("s3://bucket/online/store.sqlite", OnlineStoreConfig())


# -- the reference model and the pure-function property -----------------------------------

_event = st.builds(event, st.sampled_from(IDS), st.integers(0, 60).map(lambda k: 5 * k))


def item_state(item_id: str, live: bool, content: bool, k: int) -> ItemState:
    return ItemState(item_id, live, {"category": f"c{k}"} if content else None, BASE + 20 * k)


# k = 8 drawn often and three items: equal `updated` (the later write wins) comes up.
_state = st.builds(
    item_state,
    st.sampled_from(ITEMS[:3]),
    st.booleans(),
    st.booleans(),
    st.integers(0, 15) | st.just(8),
)
_ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "set_items", "expire"]),
        st.lists(_event, max_size=8),
        st.lists(_state, max_size=3),
        st.integers(0, 30),
    ),
    max_size=12,
)
_settings = settings(
    max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip


@_settings
@given(ops=_ops)
def test_interleaved_calls_match_the_reference(make_store, ops):
    store, ref, now = make_store(), Reference(), BASE + 100
    for kind, events, states, step in ops:
        now += step
        if kind == "append":
            assert store.append(events, now) == ref.append(events, now)
        elif kind == "set_items":
            store.set_items(states, now), ref.set_items(states, now)
        else:
            assert store.expire(now) == ref.expire(now)
        assert_same(store, ref, now)
    assert_same(store, ref, now + 50)


def pure(events, now, per_user):
    """The state as a function of the set of events: each id's earliest unexpired version,
    each user's newest `per_user` of them."""
    winners: dict[str, Event] = {}
    for e in events:
        if e.ts >= now - TTL and (e.event_id not in winners or e.ts < winners[e.event_id].ts):
            winners[e.event_id] = e
    out: dict[str, list[Event]] = {}
    for e in sorted(winners.values(), key=Event.key, reverse=True):
        if len(out.setdefault(e.user_id, [])) < per_user:
            out[e.user_id].append(e)
    return out


@pytest.mark.parametrize("restamped", [False, True], ids=["replays", "restamped"])
@settings(_settings, max_examples=25)
@given(picks=st.lists(st.tuples(st.sampled_from(IDS), st.integers(0, 60)), max_size=25),
       seed=st.integers(0, 2**16))  # fmt: skip
def test_the_state_is_a_function_of_the_set_of_events(make_store, restamped, picks, seed):
    # Replays (one version per id) with trimming on; restamped versions (several ts per id)
    # with room for every event, since an earlier version arriving after its user trimmed
    # would need the trimmed events back (the documented bound of a capped store).
    per_user = 100 if restamped else L
    events = [event(i, 5 * (k if restamped else int(i[1:]) * 6)) for i, k in picks]
    now = BASE + 150
    whole, split = make_store(events_per_user=per_user), make_store(events_per_user=per_user)
    added = whole.append(events, now)
    shuffled = random.Random(seed).sample(events, len(events))
    cuts = sorted(random.Random(seed + 1).sample(range(len(events) + 1), min(3, len(events))))
    batches = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    assert sum(split.append(batch, now) for batch in batches) == added
    assert split.append(events[::-1], now) == 0
    expected = pure(events, now, per_user)
    assert added == len({e.event_id for e in events if e.ts >= now - TTL})
    assert whole.recent(USERS, now) == split.recent(USERS, now) == expected


# -- persistence --------------------------------------------------------------------------


def test_sqlite_data_survives_close_and_reopen(tmp_path):
    cfg, now = OnlineStoreConfig(ttl_s=TTL, events_per_user=L), BASE + 100
    path = str(tmp_path / "deep" / "store.sqlite")
    first = SqliteStore(path, cfg)
    first.append([event(i, 60) for i in IDS], now)
    first.set_items([ItemState("a", False, {"k": 1}, BASE + 90)], now)
    before = state(first, now)
    first.close()
    again = SqliteStore(path, cfg)
    assert state(again, now) == before and before[2] > 0
    assert again.append([event(i, 60) for i in IDS], now) == 0
    again.close()


def test_redis_data_survives_a_restart(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    from peppercorn.online_store.redis import RedisStore

    try:
        cfg, now = OnlineStoreConfig(ttl_s=TTL, events_per_user=L), BASE + 100
        store = RedisStore(server.url, cfg)
        store.append([event(i, 60) for i in IDS], now)
        store.set_items([ItemState("a", False, {"k": 1}, BASE + 90)], now)
        before = state(store, now)
        server.restart()  # the append-only file brings the data back
        assert state(store, now) == before and before[2] > 0  # stale pooled sockets: retried
        assert RedisStore(server.url, cfg).append([event(i, 60) for i in IDS], now) == 0
        store.close()
    finally:
        server.stop()


def test_redis_drops_expired_keys_by_itself(redis_server):  # noqa: F811  (the fixture)
    import redis

    from peppercorn.online_store.redis import RedisStore

    cfg = OnlineStoreConfig(ttl_s=1.0, key_prefix=f"t{next(_names)}")
    store, now = RedisStore(redis_server.url, cfg), time.time()
    store.append([Event("x", "u", "r", "click", now - 0.7)], now)  # expires at now + 0.3 s
    store.set_items([ItemState("a", True, None, now - 0.7)], now)
    client = redis.Redis.from_url(redis_server.url)
    keys = [f"{cfg.key_prefix}:{k}" for k in ("u:u", "id:x", "i:a")]
    assert client.exists(*keys) == 3
    time.sleep(0.5)
    assert client.exists(*keys) == 0
    store.close(), client.close()


# -- concurrency --------------------------------------------------------------------------


def pair(k: int) -> list[Event]:
    return [Event(f"{u}{k:04d}", u, "r", "click", BASE + k) for u in "ab"]


def test_readers_see_whole_appends_while_a_writer_appends(make_store):
    store, now, n = make_store(events_per_user=1000), BASE + 99, 60
    errors: list[BaseException] = []
    done = threading.Event()

    def write():
        try:
            for k in range(n):
                store.append(pair(k), now)
        except BaseException as exc:
            errors.append(exc)
        done.set()

    def read():
        try:
            while not done.is_set():
                got = store.recent(["a", "b"], now)
                a, b = ([e.event_id for e in got.get(u, [])] for u in "ab")
                assert a == [f"a{k:04d}" for k in reversed(range(len(a)))]  # a prefix
                assert len(b) == len(a)  # both halves of every append, or neither
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in "123"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert store.size(now).events == 2 * n


_CHILD = """
import sys, types
from peppercorn.online_store import Event
from peppercorn.online_store.sqlite import SqliteStore
cfg = types.SimpleNamespace(ttl_s=100.0, events_per_user=1000, timeout_s=10.0)
store, base = SqliteStore(sys.argv[1], cfg), float(sys.argv[2])
for k in range(50):
    store.append([Event(f"p{k}", "p", "r", "click", base + k)], base + 60)
"""


def test_sqlite_takes_writes_from_two_processes(tmp_path):
    path = str(tmp_path / "shared.sqlite")
    cfg = OnlineStoreConfig(ttl_s=TTL, events_per_user=1000, timeout_s=10.0)
    store, now = SqliteStore(path, cfg), BASE + 60
    store.ping()  # the schema exists before the child starts
    child = subprocess.Popen([sys.executable, "-c", _CHILD, path, repr(BASE)], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    for k in range(50):
        store.append([Event(f"m{k}", "m", "r", "click", BASE + k)], now)
        store.recent(["p", "m"], now)
    assert child.wait(timeout=60) == 0, child.stderr.read()
    got = store.recent(["p", "m"], now)
    assert [len(got["p"]), len(got["m"])] == [50, 50]
    store.close()


# -- unavailability -----------------------------------------------------------------------


def calls(store, now=BASE):
    return {
        "append": lambda: store.append([Event("x", "u", "r", "click", now)], now),
        "recent": lambda: store.recent(["u"], now),
        "set_items": lambda: store.set_items([ItemState("a", True, None, now)], now),
        "items": lambda: store.items(["a"], now),
        "offline": lambda: store.offline(now),
        "created": lambda: store.created(now),
        "expire": lambda: store.expire(now),
        "size": lambda: store.size(now),
        "ping": store.ping,
    }


def assert_unavailable(store, names: str, within_s: float) -> None:
    for name, call in calls(store).items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=names):
            call()
        assert time.monotonic() - started < within_s, name


@pytest.mark.parametrize("how", ["killed", "paused"])
def test_a_stopped_redis_is_unavailable_within_the_timeout(tmp_path, how):
    server = RedisServer(tmp_path / "redis").start()
    from peppercorn.online_store.redis import RedisStore

    cfg = OnlineStoreConfig(ttl_s=TTL, timeout_s=0.2)
    url = server.url.replace("//", "//:secret@")
    store = RedisStore(url, cfg)
    try:
        server.kill() if how == "killed" else server.pause()
        assert_unavailable(store, f"redis://127.0.0.1:{server.port}/0", within_s=1.0)
        with pytest.raises(StoreUnavailable) as caught:
            store.ping()
        assert "secret" not in str(caught.value)
    finally:
        server.kill()
        store.close()


@pytest.mark.parametrize("how", ["directory", "under_a_file", "not_a_database"])
def test_an_unusable_sqlite_path_is_unavailable(tmp_path, how):
    path = tmp_path / "store.sqlite"
    if how == "directory":
        path.mkdir()
    elif how == "under_a_file":
        path.write_text("a file")
        path = path / "store.sqlite"
    else:
        path.write_bytes(b"this is not an SQLite database, only bytes " * 100)
    store = SqliteStore(str(path), OnlineStoreConfig(timeout_s=0.2))
    assert_unavailable(store, str(path), within_s=2.0)


def test_a_locked_sqlite_file_fails_writes_after_the_timeout(tmp_path):
    import sqlite3

    path = str(tmp_path / "store.sqlite")
    store = SqliteStore(path, OnlineStoreConfig(ttl_s=TTL, timeout_s=0.2))
    store.append([Event("x", "u", "r", "click", BASE)], BASE)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # in WAL: blocks writers, not readers
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            store.append([Event("y", "u", "r", "click", BASE)], BASE)
        assert 0.15 < time.monotonic() - started < 2.0
        assert [e.event_id for e in store.recent(["u"], BASE)["u"]] == ["x"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.append([Event("y", "u", "r", "click", BASE)], BASE) == 1
    store.close()
