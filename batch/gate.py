"""The promotion gate: a new model is exported only if it is not worse than the serving one.

Compared on validation NDCG@10 (`metrics.json`'s `validation_ndcg@10`, the metric early
stopping selects on): the candidate passes when it is at least the serving version's value
minus `batch.promotion_margin`.  With no serving version (or one without the metric) the
candidate passes, and the reason says so.
"""

from __future__ import annotations

__all__ = ["METRIC", "decide"]

METRIC = "validation_ndcg@10"


def decide(candidate: dict, serving: dict | None, serving_version: int | None, margin: float):
    """The gate decision as a JSON-ready dict with `promote` (bool) and a `reason`."""
    new = float(candidate[METRIC])
    decision = {
        "metric": METRIC,
        "candidate": new,
        "serving_version": serving_version,
        "serving": None,
        "margin": margin,
    }
    if serving is None or METRIC not in serving:
        why = "no serving version" if serving is None else f"serving version has no {METRIC}"
        return {**decision, "promote": True, "reason": f"{why}: promoted"}
    old = float(serving[METRIC])
    promote = new >= old - margin
    verb = "promoted" if promote else "refused"
    reason = f"{verb}: {METRIC} {new:.4f} vs serving v{serving_version} {old:.4f} (margin {margin})"
    return {**decision, "serving": old, "promote": promote, "reason": reason}
