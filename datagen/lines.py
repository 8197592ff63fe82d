"""Turn one block of simulated events into raw log lines (JSON lines or CSV), malformed ones
included.  Formatting is vectorised with Arrow compute; only the few broken lines are touched
in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.malformed import MALFORMED_KINDS, plan_block
from datagen.sessions import EVENT_NAMES, WATCH, simulate_rows
from datagen.world import World

__all__ = ["CSV_HEADER", "BlockSpec", "block_lines"]

CSV_HEADER = "event_id,user_id,item_id,event,ts,watch_seconds,gift_value"
# Misspelt or foreign event types and timestamps no parser should accept.
_BAD_EVENTS = ("share", "pageview", "heartbeat", "impresion")
_BAD_TIMESTAMPS = ("not-a-time", "2026-13-41T25:61:00Z", "??", "yesterday evening")
_ALL_EVENTS = pa.array(EVENT_NAMES + _BAD_EVENTS)
_EVENTS_STREAM = 0xE7E


@dataclass(frozen=True)
class BlockSpec:
    """Everything a worker needs to produce any block of the event log."""

    seed: int
    total_rows: int
    total_malformed: int
    block_rows: int
    fmt: str  # "jsonl" | "csv"
    event_width: int
    user_width: int
    item_width: int

    def n_blocks(self) -> int:
        return -(-self.total_rows // self.block_rows)

    def bounds(self, block_id: int) -> tuple[int, int]:
        start = block_id * self.block_rows
        return start, min(self.block_rows, self.total_rows - start)


def _ids(prefix: str, values: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _numbers(values: np.ndarray, null: str) -> pa.Array:
    return pc.fill_null(pc.cast(pa.array(values, from_pandas=True), pa.string()), null)


def _select(plan, kind: str) -> tuple[np.ndarray, np.ndarray]:
    hit = plan.kinds == MALFORMED_KINDS.index(kind)
    return plan.positions[hit], plan.draws[hit]


def block_lines(world: World, spec: BlockSpec, block_id: int) -> pa.Array:
    """The raw lines (no header) of block `block_id`: deterministic in (seed, block_id)."""
    start, n = spec.bounds(block_id)
    rows = simulate_rows(world, np.random.default_rng([spec.seed, _EVENTS_STREAM, block_id]), n)
    plan = plan_block(spec.seed, block_id, start, n, spec.total_rows, spec.total_malformed)
    user, item, event = rows["user"].copy(), rows["item"].copy(), rows["event"].astype(np.int64)
    watch, gift = rows["watch_seconds"].copy(), rows["gift_value"].copy()

    pos, _ = _select(plan, "missing_user_id")
    missing_user = np.zeros(n, dtype=bool)
    missing_user[pos] = True
    pos, u = _select(plan, "unknown_user")
    user[pos] = world.n_users + (u * world.n_users).astype(np.int64)
    pos, u = _select(plan, "unknown_item")
    item[pos] = world.n_items + (u * world.n_items).astype(np.int64)
    pos, u = _select(plan, "unknown_event")
    event[pos] = len(EVENT_NAMES) + (u * len(_BAD_EVENTS)).astype(np.int64)
    pos, u = _select(plan, "negative_watch_seconds")
    event[pos], watch[pos], gift[pos] = WATCH, -np.round(1.0 + 600.0 * u, 1), np.nan

    ts = pc.replace_substring(
        pc.cast(pa.array(rows["ts"].astype("datetime64[s]")), pa.string()), " ", "T"
    )
    ts = pc.binary_join_element_wise(ts, "Z", "")
    pos, u = _select(plan, "bad_timestamp")
    if len(pos):
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
        bad = [_BAD_TIMESTAMPS[int(x * len(_BAD_TIMESTAMPS))] for x in u]
        ts = pc.replace_with_mask(ts, pa.array(mask), pa.array(bad))

    event_id = _ids("e", np.arange(start, start + n), spec.event_width)
    user_id = _ids("u", user, spec.user_width)
    item_id = _ids("r", item, spec.item_width)
    names = pc.take(_ALL_EVENTS, pa.array(event))
    if spec.fmt == "csv":
        user_id = pc.if_else(pa.array(missing_user), "", user_id)
        lines = pc.binary_join_element_wise(
            event_id, user_id, item_id, names, ts, _numbers(watch, ""), _numbers(gift, ""), ","
        )
    else:
        user_field = pc.binary_join_element_wise('"user_id": "', user_id, '", ', "")
        user_field = pc.if_else(pa.array(missing_user), "", user_field)
        lines = pc.binary_join_element_wise(
            '{"event_id": "', event_id, '", ', user_field, '"item_id": "', item_id,
            '", "event": "', names, '", "ts": "', ts, '", "watch_seconds": ',
            _numbers(watch, "null"), ', "gift_value": ', _numbers(gift, "null"), "}", "",
        )  # fmt: skip

    pos, _ = _select(plan, "duplicate")
    if len(pos):
        take = np.arange(n)
        take[pos] = plan.sources[plan.kinds == MALFORMED_KINDS.index("duplicate")]
        lines = pc.take(lines, pa.array(take))
    pos, u = _select(plan, "malformed_line")
    if len(pos):
        broken = []
        for line, x in zip(pc.take(lines, pa.array(pos)).to_pylist(), u, strict=True):
            if spec.fmt == "csv":
                broken.append(line.rsplit(",", 2)[0])  # too few columns
            else:
                broken.append(line[: 10 + int(x * (len(line) - 11))])  # cut mid-line
        mask = np.zeros(n, dtype=bool)
        mask[pos] = True
        lines = pc.replace_with_mask(lines, pa.array(mask), pa.array(broken))
    return lines
