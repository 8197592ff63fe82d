"""Which event lines of a block are malformed, and how.

The plan for a block depends only on (seed, block id, block position, totals), never on the
simulated data or on Spark's partitioning, so the driver can recompute the counts per kind
for `_SUCCESS.json` without touching the events, and every run gives the same lines.
Each malformed line breaks exactly one rule, so ETL's quarantine reasons add up to the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MALFORMED_KINDS", "MalformedPlan", "malformed_before", "plan_block"]

# Reason codes as ETL's quarantine uses them; "malformed_line" is reported as
# malformed_json or malformed_csv depending on the output format.
MALFORMED_KINDS = (
    "malformed_line",
    "missing_user_id",
    "unknown_event",
    "bad_timestamp",
    "negative_watch_seconds",
    "unknown_user",
    "unknown_item",
    "duplicate",
)
_LINE, _DUPLICATE = MALFORMED_KINDS.index("malformed_line"), MALFORMED_KINDS.index("duplicate")
_STREAM = 0xBAD


def malformed_before(row: int, total_rows: int, total_malformed: int) -> int:
    """How many of the first `row` event lines are malformed (exact, integer arithmetic)."""
    return row * total_malformed // total_rows


@dataclass(frozen=True)
class MalformedPlan:
    """Malformed lines of one block: positions (sorted, block-relative) and kinds."""

    positions: np.ndarray
    kinds: np.ndarray  # index into MALFORMED_KINDS
    sources: np.ndarray  # for duplicates: the earlier well-formed position copied; else -1
    draws: np.ndarray  # a uniform number per line, for kind-specific details

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.kinds, minlength=len(MALFORMED_KINDS))
        return {kind: int(n) for kind, n in zip(MALFORMED_KINDS, found, strict=True)}


def plan_block(
    seed: int, block_id: int, start: int, n_rows: int, total_rows: int, total_malformed: int
) -> MalformedPlan:
    """The malformed lines among rows [start, start + n_rows) of the event log."""
    m = malformed_before(start + n_rows, total_rows, total_malformed) - malformed_before(
        start, total_rows, total_malformed
    )
    rng = np.random.default_rng([seed, _STREAM, block_id])
    positions = np.sort(rng.choice(n_rows, size=m, replace=False))
    kinds = rng.integers(0, len(MALFORMED_KINDS), m)
    pick = rng.random(m)
    draws = rng.random(m)
    sources = np.full(m, -1, dtype=np.int64)
    bad = set(positions.tolist())
    for j in np.flatnonzero(kinds == _DUPLICATE).tolist():
        # Copy a well-formed earlier line; walk back from a random one to the nearest good one.
        q = int(pick[j] * positions[j]) if positions[j] > 0 else -1
        while q >= 0 and q in bad:
            q -= 1
        if q < 0:
            kinds[j] = _LINE  # nothing earlier to duplicate: break the line instead
        else:
            sources[j] = q
    return MalformedPlan(positions=positions, kinds=kinds, sources=sources, draws=draws)
