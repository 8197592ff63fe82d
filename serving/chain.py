"""Two-stage recommendation for `/recommend`: retrieve -> filter -> rank -> top k.

The chain lives in the contracts floor (`peppercorn.two_stage`) so that batch top-K, which must
not import serving, runs the same code for thousands of users at a time; `/recommend` asks it
for one user, with per-stage timings. Online and batch answers agree for the same versions.
"""

from __future__ import annotations

from peppercorn.two_stage import ChainAnswer, content_scores, index_map, recommend_chain

__all__ = ["ChainAnswer", "content_scores", "index_map", "recommend_chain"]
