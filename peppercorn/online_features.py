"""A user's features from the online store's events, by the features stage's rules.

The offline pipeline builds a user's history with `features.labels.positives` (interactions
that the label config counts as positives, one per item at its latest time) and
`features.history.user_history` (newest first, ties to the larger item index, capped at L).
Serving builds the same thing at request time from the store's newest events, with the rules
restated here in plain Python (serving imports no Spark); tests replay one log both ways and
compare value by value (tests/features/test_online_offline.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from peppercorn.online_store import Event

__all__ = [
    "EXPOSURE_EVENTS",
    "OnlineUser",
    "history",
    "item_indices",
    "merged_history",
    "is_positive",
    "offline_indices",
    "online_history",
    "online_seen",
    "ranker_inputs",
    "reads_history",
    "seen_items",
]

_LOCK = threading.Lock()

# Exposures are not interactions (features.labels.EXPOSURE_EVENTS).
EXPOSURE_EVENTS = ("impression",)


def is_positive(event: Event, label: dict) -> bool:
    """Whether the label config (`features.label`, as a dict) counts `event` as a positive."""
    if event.event in EXPOSURE_EVENTS:
        return False
    kind = label.get("kind", "any")
    if kind == "watch":
        threshold = float(label.get("watch_seconds", 30.0))
        # A watch without a duration is no positive at any threshold (Spark's null >= t).
        seconds = event.watch_seconds
        return event.event == "watch" and seconds is not None and seconds >= threshold
    # Online events carry no rating: under a rating label none is a positive.
    return kind != "rating"


def history(
    events: Iterable[Event], label: dict, length: int, index: Callable[[str], int]
) -> list[tuple[int, float]]:
    """(item index, ts) of the user's positives, newest first, at most `length`.

    `index` maps a raw item id to the model's item index (0: unknown); an item the model does
    not know cannot be a history input and is left out, as the features stage never sees it.
    """
    latest: dict[int, float] = {}
    for e in events:
        if not is_positive(e, label):
            continue
        idx = index(e.item_id)
        if idx and e.ts > latest.get(idx, -np.inf):
            latest[idx] = e.ts
    ordered = sorted(latest.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)
    return ordered[:length]


def merged_history(
    events: Iterable[Event], label: dict, length: int, index: Callable[[str], int], exported
) -> np.ndarray:
    """int32 [length]: the user's history, newest first, 0-padded.

    The store's positives come first, then the items of `exported` (the version's history from
    training) not among them: the store holds a user's newest events, which may be fewer than
    L, and the older history must not vanish because one new event arrived.
    """
    items = [idx for idx, _ in history(events, label, length, index)]
    online = set(items)
    merged = (items + [int(i) for i in exported if i and int(i) not in online])[:length]
    out = np.zeros(length, np.int32)
    out[: len(merged)] = merged
    return out


def seen_items(events: Iterable[Event]) -> set[str]:
    """Raw ids of the items the user interacted with (features stage's `seen`: interactions)."""
    return {e.item_id for e in events if e.event not in EXPOSURE_EVENTS}


@dataclass(frozen=True)
class OnlineUser:
    """What the online store says for one request's user, applied over the versions' records:
    the user's newest events (history and seen items) and the rooms not live now (raw ids)."""

    events: Sequence[Event] = ()
    offline: Collection[str] = frozenset()


_OFFLINE: dict[tuple, np.ndarray] = {}
_OFFLINE_KEPT = 8  # the current set for each version in use (retrieval and ranker)


def item_indices(version, raw_ids: Iterable) -> np.ndarray:
    """The version's sorted unique item indices of `raw_ids`, items added to a retrieval
    version's live index included; unknown ids are left out."""
    added = version.retrieval.added if version.retrieval is not None else {}
    found = [version.items.lookup(raw) or added.get(str(raw), 0) for raw in raw_ids]
    return np.unique(np.asarray([i for i in found if i], np.int64))


def offline_indices(version, offline: Collection[str]) -> np.ndarray:
    """`item_indices` of the rooms not live, kept while the set (a frozenset, whose hash Python
    keeps) and the version's added items stay the same: a large set costs one mapping per
    change, not one per request."""
    added = len(version.retrieval.added) if version.retrieval is not None else 0
    key = (version.uri, version.version, added, frozenset(offline))
    with _LOCK:
        found = _OFFLINE.get(key)
    if found is None:
        found = item_indices(version, key[3])
        with _LOCK:
            if len(_OFFLINE) >= _OFFLINE_KEPT:
                _OFFLINE.pop(next(iter(_OFFLINE)))
            _OFFLINE[key] = found
    return found


def online_history(version, user: int, events: Sequence[Event]):
    """{user: row} of the user's history built from `events` over the exported one (None
    when the version reads no history or the events hold no positive it knows)."""
    if not version.history_length or not events:
        return None
    exported = version.history_rows(np.asarray([user]))[0]
    label = version.feature_spec.get("label") or {"kind": "any"}
    row = merged_history(events, label, version.history_length, version.items.lookup, exported)
    return {int(user): row}


def online_seen(version, events: Sequence[Event]) -> np.ndarray:
    """The version's indices of the items `events` show the user interacted with."""
    found = [version.items.lookup(raw) for raw in seen_items(events)]
    return np.asarray([i for i in found if i], np.int64)


def ranker_inputs(version, user: int, online: OnlineUser, exclude_seen: bool):
    """For a version scoring a user alone (one-stage /recommend, /predict): the item indices
    to leave out (the store's seen items when `exclude_seen`, rooms not live) and the history
    row to use (None: the exported one)."""
    excluded = offline_indices(version, online.offline) if online.offline else np.empty(0, np.int64)
    if exclude_seen and online.events:
        excluded = np.union1d(excluded, online_seen(version, online.events))
    history = online_history(version, user, online.events)
    return excluded, None if history is None else history[int(user)]


def reads_history(version, events: Sequence[Event]) -> bool:
    """Whether `version` reads a history and `events` hold a positive on an item it knows: a
    user new to the model can then be recommended from the store's events."""
    label = version.feature_spec.get("label") or {"kind": "any"}
    return bool(version.history_length) and any(
        is_positive(e, label) and version.items.lookup(e.item_id) for e in events
    )
