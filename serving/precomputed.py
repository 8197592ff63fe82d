"""The precomputed fast path of /recommend: answers from the latest batch top-K partition.

`python -m batch` writes `<batch_output>/dt=YYYY-MM-DD/` (user_id, rank, item_id, score,
model, version).  When `serving.batch_output` is set, /recommend answers a known user from
the latest day's rows instead of scoring every item, but only when that answer is exactly
what online scoring would give: the same model and version as the one served, all items
(no `candidates`), seen items left out, and `k` no more than the rows kept for the user.
Anything else falls back to online scoring.  The folder is re-checked for a newer day at
most every `refresh_s` seconds; a failed read keeps the previous table (and is logged).
"""

from __future__ import annotations

import datetime as dt_
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = ["PrecomputedTopK", "TopKTable", "latest_day"]

log = logging.getLogger(__name__)
_COLUMNS = ["user_id", "rank", "item_id", "score", "model", "version"]


def latest_day(root: Path) -> str | None:
    """The newest `dt=YYYY-MM-DD` partition under `root` that holds data files."""
    days = []
    for part in root.glob("dt=*") if root.is_dir() else ():
        try:
            day = dt_.date.fromisoformat(part.name[3:]).isoformat()
        except ValueError:
            continue
        if any(part.glob("*.parquet")):
            days.append(day)
    return max(days, default=None)


@dataclass
class TopKTable:
    """One day's top-K: per user, item ids and scores best first."""

    day: str
    model: str
    version: int
    rows: dict[str, tuple[list[str], list[float]]]

    @classmethod
    def read(cls, root: Path, day: str) -> TopKTable:
        """Read `root/dt=day`; ValueError when it is not one model version's top-K."""
        table = pq.read_table(root / f"dt={day}", columns=_COLUMNS)
        models = set(table.column("model").unique().to_pylist())
        versions = set(table.column("version").unique().to_pylist())
        if len(models) != 1 or len(versions) != 1:
            raise ValueError(f"dt={day}: expected one model version, got {models} {versions}")
        order = np.lexsort((table.column("rank").to_numpy(), table.column("user_id").to_numpy()))
        users = table.column("user_id").to_numpy()[order]
        items = table.column("item_id").to_numpy()[order]
        scores = table.column("score").to_numpy()[order]
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        bounds = np.r_[starts, users.size]
        rows = {
            str(users[a]): ([str(i) for i in items[a:b]], scores[a:b].tolist())
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        }
        return cls(day, models.pop(), int(versions.pop()), rows)


class PrecomputedTopK:
    """The latest batch output under `root`, refreshed lazily."""

    def __init__(self, root: str | Path, refresh_s: float = 30.0) -> None:
        self.root = Path(str(root).removeprefix("file://"))
        self.refresh_s = refresh_s
        self.table: TopKTable | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_s:
            return
        with self._lock:
            self._checked = now
            day = latest_day(self.root)
            if day is None or (self.table is not None and self.table.day == day):
                return
            try:
                self.table = TopKTable.read(self.root, day)
                log.info("precomputed top-K: %s dt=%s (%d users)", self.root, day,
                         len(self.table.rows))  # fmt: skip
            except (OSError, ValueError) as exc:
                log.warning("precomputed top-K: cannot read %s dt=%s: %s", self.root, day, exc)

    def lookup(
        self, model: str, version: int, user_id: str, k: int, exclude_seen: bool, candidates
    ) -> tuple[list[str], list[float]] | None:
        """(item ids, scores) best first, or None when online scoring must answer."""
        if candidates is not None or not exclude_seen:
            return None
        self._refresh()
        table = self.table
        if table is None or (table.model, table.version) != (model, version):
            return None
        hit = table.rows.get(str(user_id))
        if hit is None or k > len(hit[0]):
            return None
        return hit[0][:k], hit[1][:k]
