"""An independent check of reported NCF-split figures: score the raw files with the export.

Reads `test.negative` of the NCF split as published (raw ids), maps the ids through the
export's own vocabularies and scores the 100 candidates per user through the saved graph's
`serving_default` signature, as a client of the server would. No features stage, no trainer
code: if this disagrees with `metrics.json`, the pipeline between the raw files and the
metrics is wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peppercorn.model_repository import ExportedVersion

__all__ = ["score_raw_test"]


def score_raw_test(version: ExportedVersion, split_dir: Path) -> dict[str, float]:
    """HR@10 and NDCG@10 (ties against the held-out item) of an export on the raw test file."""
    loaded = version.open()
    users, candidates = [], []
    for line in (Path(split_dir) / "test.negative").read_text().splitlines():
        head, *negatives = line.strip().split("\t")
        user, held_out = head.strip("()").split(",")
        users.append(loaded.users.lookup(user))
        candidates.append([loaded.items.lookup(i) for i in [held_out, *negatives]])
    items = np.asarray(candidates, np.int32)
    user_idx = np.repeat(np.asarray(users, np.int32), items.shape[1])
    scores = loaded.score_pairs(user_idx, items.reshape(-1)).reshape(items.shape)
    rank = (scores[:, 1:] >= scores[:, :1]).sum(axis=1)
    hit = rank < 10
    return {
        "hr@10": float(hit.mean()),
        "ndcg@10": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()),
        "users": len(users),
        "unknown_ids": int((items == 0).sum() + (np.asarray(users) == 0).sum()),
    }
