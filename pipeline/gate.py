"""The promotion gate: the candidate replaces the serving version only if it is not worse on
the same data.

Both are scored on this run's test split (each user's latest interaction against its
negatives), the way TFX's Evaluator scores a candidate and its baseline on one evaluation
split. Neither trained on it: the candidate holds the test split out (its refit too), and the
serving version was trained on earlier data, in which a user's latest interaction was either
this one, held out there as well, or not there yet (a repeated interaction with an item seen
before is the exception). Comparing the NDCG@10 each version recorded on its own day's data
would compare different evaluation sets.

The serving version is scored through its saved graph and vocabularies, as the server would
answer: today's indices map to its indices by raw id (ids it never saw are its index 0).
The candidate passes when its NDCG@10 is at least the serving version's minus
`batch.promotion_margin`. With no serving version, or one that does not load (the server
refuses it too), the candidate passes and the reason says why.
"""

from __future__ import annotations

import numpy as np

from peppercorn.loaded_version import LoadedVersion
from training.data import EvalSet
from training.metrics import evaluate_scores
from training.trainer import score_eval_set

__all__ = ["METRIC", "decide", "index_map", "rescore"]

METRIC = "ndcg@10"


def decide(
    candidate: float,
    serving: float | None,
    serving_version: int | None,
    margin: float,
    no_serving: str = "no serving version",
) -> dict:
    """The gate decision as a JSON-ready dict with `promote` (bool) and a `reason`.

    `serving` is None when there is nothing to compare with; `no_serving` then says why.
    """
    decision = {
        "metric": METRIC,
        "split": "test",
        "candidate": float(candidate),
        "serving_version": serving_version,
        "serving": None if serving is None else float(serving),
        "margin": margin,
    }
    if serving is None:
        return {**decision, "promote": True, "reason": f"{no_serving}: promoted"}
    promote = candidate >= serving - margin
    verb = "promoted" if promote else "refused"
    reason = (
        f"{verb}: {METRIC} on this run's test split {candidate:.4f} vs serving "
        f"v{serving_version} {serving:.4f} (margin {margin})"
    )
    return {**decision, "promote": promote, "reason": reason}


def index_map(today: list, serving: list) -> np.ndarray:
    """For each index of today's vocabulary, the serving vocabulary's index of the same raw id
    (0, "unknown", where it has none)."""
    where = {str(token): i for i, token in enumerate(serving)}
    out = np.array([where.get(str(token), 0) for token in today], np.int32)
    out[:1] = 0  # index 0 is "unknown" in both
    return out


def rescore(serving: LoadedVersion, vocabs: dict, data: EvalSet) -> dict[str, float]:
    """Metrics of the loaded `serving` version on `data` (indices in `vocabs`' space)."""
    user_map = index_map(vocabs["user_id"]["tokens"], serving.users.tokens)
    item_map = index_map(vocabs["item_id"]["tokens"], serving.items.tokens)

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return serving.score_pairs(user_map[users], item_map[items])

    return evaluate_scores(*score_eval_set(score, data))
