"""The production online store: Redis (>= 6.2, for SET ... PXAT), through the `redis` client.

Key layout, every key under `<prefix>:` (one logical database may hold several prefixes):
- `u:<user>`: sorted set of the user's kept events, member `<event_id>\\0<event JSON>`, score
  `ts`; Redis orders equal scores by member, so by event id, as `Event.key()` does. PEXPIREAT
  at the newest event's ts + ttl: Redis drops a user whose events have all expired.
- `id:<event_id>`: `"<ts> <digest> <user>"`, the winning version of every unexpired id, kept
  or trimmed (the duplicate rule outlives the user's list); PXAT ts + ttl.
- `users`: sorted set user -> newest kept ts (users with events: ZCOUNT, no KEYS scan).
- `i:<item>`: the item state's JSON, PXAT updated + ttl; `items`, `offline`, `created`:
  sorted sets item -> updated of all states, the not-live ones and the ones with content.
Writes are Lua scripts (one atomic call per append or set_items, one round trip); reads
filter by ts as well, so an expired event never shows even before Redis or `expire` drops it.
The expiry times are Redis's wall clock while reads use the caller's `now`: keep the clocks
close. A `maxmemory-policy` that evicts (allkeys-*) would lose state: use noeviction. Keys are
built inside the scripts: a single Redis (or a replica set), not Redis Cluster.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from peppercorn.online_store import Event, ItemState, StoreSize, StoreUnavailable
from peppercorn.online_store.sqlite import decode_event, encode_event, winning_versions

__all__ = ["RedisStore"]

_UNAVAILABLE_ERRORS = ("MISCONF", "OOM", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "LOADING")
_PAGE = 500  # users or items per expire/size script call: Redis is single-threaded

# ARGV: prefix, cutoff, ttl_ms, L, then per event id, user, ts, digest, member, expire-at ms.
# Numbers travel as the client's strings: Lua's own tostring keeps only 14 digits.
_APPEND = """
local p, cutoff_s, ttl_ms, L = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local cutoff = tonumber(cutoff_s)
local added, touched = 0, {}
for i = 5, #ARGV, 6 do
  local id, user, ts_s, dg_s, member, exp = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3],
    ARGV[i+4], ARGV[i+5]
  local ts, dg = tonumber(ts_s), tonumber(dg_s)
  local tkey = p .. ':id:' .. id
  local old = redis.call('GET', tkey)
  local write = true
  if old then
    local ts0_s, dg0_s, user0 = string.match(old, '^(%S+) (%S+) (.*)$')
    local ts0, dg0 = tonumber(ts0_s), tonumber(dg0_s)
    if ts0 >= cutoff and (ts0 < ts or (ts0 == ts and dg0 <= dg)) then
      write = false
    else
      if ts0 < cutoff then added = added + 1 end
      local ukey = p .. ':u:' .. user0
      local prefix = id .. '\\0'
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', ukey, ts0_s, ts0_s)) do
        if string.sub(m, 1, #prefix) == prefix then redis.call('ZREM', ukey, m) end
      end
      touched[user0] = true
    end
  else
    added = added + 1
  end
  if write then
    redis.call('SET', tkey, ts_s .. ' ' .. dg_s .. ' ' .. user, 'PXAT', exp)
    redis.call('ZADD', p .. ':u:' .. user, ts_s, member)
    touched[user] = true
  end
end
for user, _ in pairs(touched) do
  local ukey = p .. ':u:' .. user
  redis.call('ZREMRANGEBYSCORE', ukey, '-inf', '(' .. cutoff_s)
  local n = redis.call('ZCARD', ukey)
  if n > L then redis.call('ZREMRANGEBYRANK', ukey, 0, n - L - 1) end
  if n == 0 then
    redis.call('DEL', ukey)
    redis.call('ZREM', p .. ':users', user)
  else
    local top = redis.call('ZREVRANGE', ukey, 0, 0, 'WITHSCORES')
    redis.call('ZADD', p .. ':users', top[2], user)
    local at = math.ceil(tonumber(top[2]) * 1000 + ttl_ms)
    redis.call('PEXPIREAT', ukey, string.format('%.0f', at))
  end
end
return added
"""

# ARGV: prefix, then per state item, updated, live (1/0), content (1/0), JSON, expire-at ms.
_SET_ITEMS = """
local p = ARGV[1]
for i = 2, #ARGV, 6 do
  local item, upd_s = ARGV[i], ARGV[i+1]
  local cur = redis.call('ZSCORE', p .. ':items', item)
  if (not cur) or tonumber(upd_s) >= tonumber(cur) then
    redis.call('SET', p .. ':i:' .. item, ARGV[i+4], 'PXAT', ARGV[i+5])
    redis.call('ZADD', p .. ':items', upd_s, item)
    if ARGV[i+2] == '1' then redis.call('ZREM', p .. ':offline', item)
    else redis.call('ZADD', p .. ':offline', upd_s, item) end
    if ARGV[i+3] == '1' then redis.call('ZADD', p .. ':created', upd_s, item)
    else redis.call('ZREM', p .. ':created', item) end
  end
end
return 0
"""

# ARGV: prefix, '(' .. cutoff, users...: drop their expired events; the number dropped.
_EXPIRE_USERS = """
local p, n = ARGV[1], 0
for i = 3, #ARGV do
  local ukey = p .. ':u:' .. ARGV[i]
  n = n + redis.call('ZREMRANGEBYSCORE', ukey, '-inf', ARGV[2])
  if redis.call('ZCARD', ukey) == 0 then redis.call('ZREM', p .. ':users', ARGV[i]) end
end
return n
"""

# ARGV: prefix, '(' .. cutoff, page size: drop one page of expired item states.
_EXPIRE_ITEMS = """
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. ':items', '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, item in ipairs(gone) do
  redis.call('DEL', p .. ':i:' .. item)
  for _, set in ipairs({':items', ':offline', ':created'}) do redis.call('ZREM', p .. set, item) end
end
return #gone
"""

# ARGV: prefix, cutoff, first rank, last rank: unexpired events of one page of users.
_COUNT_EVENTS = """
local p, n = ARGV[1], 0
local users = redis.call('ZRANGE', p .. ':users', ARGV[3], ARGV[4])
for _, user in ipairs(users) do
  n = n + redis.call('ZCOUNT', p .. ':u:' .. user, ARGV[2], '+inf')
end
return {n, #users}
"""


def _public_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _ms(seconds: float) -> str:
    return str(math.ceil(seconds * 1000))


def _item(text: str) -> ItemState:
    return ItemState(**json.loads(text))


class RedisStore:
    """The online store in Redis (see the module docstring for the key layout)."""

    def __init__(self, url: str, cfg) -> None:
        self.url = _public_url(url)
        self.prefix = cfg.key_prefix
        self.ttl_s = float(cfg.ttl_s)
        self.events_per_user = int(cfg.events_per_user)
        # One immediate retry on a dropped connection (a restarted server leaves the pool's
        # sockets stale); none on a timeout, so a call fails within about timeout_s.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=cfg.timeout_s,
            socket_connect_timeout=cfg.timeout_s,
            decode_responses=True,
            retry=retry,
        )
        register = self._client.register_script
        self._append, self._set_items = register(_APPEND), register(_SET_ITEMS)
        self._expire_users, self._expire_items = register(_EXPIRE_USERS), register(_EXPIRE_ITEMS)
        self._count_events = register(_COUNT_EVENTS)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis online store {self.url}: {exc}") from exc
        except redis.ResponseError as exc:
            if isinstance(exc, redis.ReadOnlyError) or str(exc).startswith(_UNAVAILABLE_ERRORS):
                raise StoreUnavailable(f"Redis online store {self.url}: {exc}") from exc
            raise

    def append(self, events: Sequence[Event], now: float) -> int:
        """Add events (idempotent by event_id); the number of ids not held before."""
        cutoff = now - self.ttl_s
        best = winning_versions(events, cutoff)
        if not best:
            return 0
        argv: list[str] = [self.prefix, repr(cutoff), _ms(self.ttl_s), str(self.events_per_user)]
        for event_id, (e, (ts, digest)) in best.items():
            text = encode_event(e)
            member = f"{event_id}\0{text}"
            argv += [event_id, e.user_id, repr(ts), str(digest), member, _ms(ts + self.ttl_s)]
        with self._guard():
            return int(self._append(args=argv))

    def recent(self, user_ids: Sequence[str], now: float) -> dict[str, list[Event]]:
        """Each user's kept, unexpired events, newest first (users with none are absent)."""
        users = list(dict.fromkeys(user_ids))
        if not users:
            return {}
        cutoff = repr(now - self.ttl_s)
        with self._guard():
            pipe = self._client.pipeline(transaction=True)  # one snapshot of all the users
            for user in users:
                key = self._key("u", user)
                pipe.zrevrangebyscore(key, "+inf", cutoff, start=0, num=self.events_per_user)
            replies = pipe.execute()
        # The JSON never holds a raw NUL (json escapes it), so the last one ends the id.
        return {
            user: [decode_event(m.rpartition("\0")[2]) for m in members]
            for user, members in zip(users, replies, strict=True)
            if members
        }

    def set_items(self, states: Sequence[ItemState], now: float) -> None:
        """Record rooms' states (the newest `updated` wins; ties keep the later write)."""
        cutoff = now - self.ttl_s
        argv = [self.prefix]
        for s in states:
            if s.updated < cutoff:
                continue  # expired on arrival: as if never written
            fields = {"item_id": s.item_id, "live": bool(s.live), "content": s.content}
            body = json.dumps({**fields, "updated": float(s.updated)})
            flags = [str(int(bool(s.live))), str(int(s.content is not None))]
            argv += [s.item_id, repr(float(s.updated)), *flags, body, _ms(s.updated + self.ttl_s)]
        if len(argv) > 1:
            with self._guard():
                self._set_items(args=argv)

    def _states(self, item_ids: list[str], now: float) -> dict[str, ItemState]:
        if not item_ids:
            return {}
        texts = self._client.mget([self._key("i", i) for i in item_ids])
        states = (_item(t) for t in texts if t is not None)
        return {s.item_id: s for s in states if s.updated >= now - self.ttl_s}

    def items(self, item_ids: Sequence[str], now: float) -> dict[str, ItemState]:
        """The unexpired states of these items (items with none are absent)."""
        with self._guard():
            return self._states(list(dict.fromkeys(item_ids)), now)

    def offline(self, now: float) -> set[str]:
        """Every item whose current, unexpired state is not live."""
        with self._guard():
            ids = self._client.zrangebyscore(self._key("offline"), repr(now - self.ttl_s), "+inf")
        return set(ids)

    def created(self, now: float) -> dict[str, ItemState]:
        """Every item whose current, unexpired state carries content."""
        with self._guard():
            ids = self._client.zrangebyscore(self._key("created"), repr(now - self.ttl_s), "+inf")
            # A state replaced between the two reads is read as it is now.
            return {i: s for i, s in self._states(ids, now).items() if s.content is not None}

    def expire(self, now: float) -> int:
        """Drop expired events and item states; the number dropped (not counting keys that
        Redis dropped by itself at their expiry time)."""
        bound = "(" + repr(now - self.ttl_s)
        dropped = 0
        with self._guard():
            cursor = None
            while cursor != 0:  # ZSCAN: pages of users, none missed while others write
                cursor, page = self._client.zscan(self._key("users"), cursor or 0, count=_PAGE)
                users = [user for user, _ in page]
                if users:
                    dropped += int(self._expire_users(args=[self.prefix, bound, *users]))
            while True:
                n = int(self._expire_items(args=[self.prefix, bound, _PAGE]))
                dropped += n
                if n < _PAGE:
                    return dropped

    def size(self, now: float) -> StoreSize:
        """Users with unexpired events, those events, and items with an unexpired state; the
        event count reads every user (pages of them), for the daily run."""
        cutoff = repr(now - self.ttl_s)
        with self._guard():
            users = self._client.zcount(self._key("users"), cutoff, "+inf")
            items = self._client.zcount(self._key("items"), cutoff, "+inf")
            events, start = 0, 0
            while True:
                args = [self.prefix, cutoff, start, start + _PAGE - 1]
                n, seen = self._count_events(args=args)
                events, start = events + int(n), start + _PAGE
                if int(seen) < _PAGE:
                    break
            memory = self._client.info("memory").get("used_memory")
        return StoreSize(users, events, items, {"url": self.url, "used_memory": memory})

    def ping(self) -> None:
        """Return when Redis answers; StoreUnavailable when it does not."""
        with self._guard():
            self._client.ping()

    def close(self) -> None:
        """Close the connection pool; a later call opens new connections."""
        self._client.close()
