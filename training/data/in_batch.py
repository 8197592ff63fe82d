"""The feeds of the in-batch sampled softmax that `training.models.two_tower` trains with.

For a batch of B positives, the candidates are the B positives themselves followed by M items
drawn uniformly from the catalogue (mixed negative sampling, Yang et al., WWW 2020). Each
logit is corrected by -log E[count of its item among the candidates] = -log(B p_j + M / n),
p_j being item j's share of the training positives: the logQ correction of Yi et al. (RecSys
2019), which keeps popular items, over-represented as in-batch negatives, from being pushed
down for it. A candidate holding row i's own positive anywhere but column i is an accidental
hit, not a negative, and is masked out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ACCIDENTAL_HIT", "InBatchSampler"]

# Added to an accidental hit's logit: softmax gives it no weight, and it stays finite.
ACCIDENTAL_HIT = -1.0e9


@dataclass
class InBatchSampler:
    """Candidates and corrections for each batch, from the positives' item counts."""

    item_counts: np.ndarray  # int [n_items], training positives per item (row 0: unknown)
    uniform_negatives: int
    id_dropout: float = 0.0

    def __post_init__(self) -> None:
        counts = np.asarray(self.item_counts, np.float64)
        self.n_items = counts.size
        self.share = counts / max(counts.sum(), 1.0)

    def feed(self, items: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """`candidates` [C], `correction` [B, C], `labels` [B, C] and `id_keep` [C, 1]."""
        items = np.asarray(items, np.int32)
        b, m = items.size, self.uniform_negatives
        uniform = rng.integers(1, self.n_items, size=m, dtype=np.int32)
        candidates = np.concatenate([items, uniform])
        expected = b * self.share[candidates] + m / max(self.n_items - 1, 1)
        correction = np.broadcast_to(-np.log(expected).astype(np.float32), (b, candidates.size))
        hits = candidates[None, :] == items[:, None]
        hits[np.arange(b), np.arange(b)] = False
        correction = np.where(hits, np.float32(ACCIDENTAL_HIT), correction).astype(np.float32)
        labels = np.zeros((b, candidates.size), np.float32)
        labels[np.arange(b), np.arange(b)] = 1.0
        keep = (rng.random(candidates.size) >= self.id_dropout).astype(np.float32)
        return {
            "candidates": candidates,
            "correction": correction,
            "labels": labels,
            "id_keep": keep.reshape(-1, 1),
        }
