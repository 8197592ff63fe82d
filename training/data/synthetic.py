"""A small, learnable features dataset in the §3 layout, for tests and benchmarks.

Users and items belong to latent groups; users interact mostly with items of their own group,
and the profiles expose the group through a categorical feature, so every model (and the
popularity baseline) has something real to learn. Written with pyarrow only, no Spark.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_synthetic_dataset"]


def _write_parquet(table: pa.Table, folder: Path, files: int, row_group_size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, files + 1).astype(int)
    for k in range(files):
        part = table.slice(bounds[k], bounds[k + 1] - bounds[k])
        pq.write_table(part, folder / f"part-{k:05d}.parquet", row_group_size=row_group_size)


def _eval_table(users, items, negatives) -> pa.Table:
    return pa.table(
        {
            "user_idx": pa.array(users, pa.int32()),
            "item_idx": pa.array(items, pa.int32()),
            "negatives": pa.array([list(map(int, r)) for r in negatives], pa.list_(pa.int32())),
        }
    )


def write_synthetic_dataset(
    root: str | Path,
    users: int = 60,
    items: int = 80,
    groups: int = 4,
    per_user: int = 12,
    eval_negatives: int = 20,
    seed: int = 0,
    files: int = 2,
    row_group_size: int = 64,
    history_length: int = 8,
    item_content: bool = False,
) -> Path:
    """Write `<root>/features/` (vocabularies, profiles, splits, manifest); return that path.

    `item_content` adds each item's group as content a retrieval model's item tower reads (a
    `category_multi_hot` vector over a `category` vocabulary).
    Indices run 1..users and 1..items (0 is unknown). Each user has `per_user` distinct
    positives; the last two become validation and test, each with `eval_negatives` unseen items.
    `history/` keeps each user's newest `history_length` training items (below per_user - 2 by
    default, so the cap is exercised).
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "features"
    user_group = rng.integers(0, groups, users + 1)
    item_group = rng.integers(0, groups, items + 1)
    rows_u, rows_i = [], []
    for u in range(1, users + 1):
        own = np.flatnonzero(item_group[1:] == user_group[u]) + 1
        other = np.flatnonzero(item_group[1:] != user_group[u]) + 1
        n_own = min(own.size, int(round(per_user * 0.85)))
        chosen = np.concatenate(
            [rng.choice(own, n_own, replace=False), rng.choice(other, per_user - n_own, False)]
        )
        rows_u.append(np.full(per_user, u))
        rows_i.append(rng.permutation(chosen))
    pos_u, pos_i = np.concatenate(rows_u), np.concatenate(rows_i)
    last = np.arange(pos_u.size) % per_user
    train = last < per_user - 2
    seen = set(zip(pos_u.tolist(), pos_i.tolist(), strict=True))

    def negatives_for(us):
        out = []
        for u in us:
            pool = np.array([i for i in range(1, items + 1) if (u, i) not in seen])
            out.append(rng.choice(pool, eval_negatives, replace=False))
        return np.array(out)

    val, test = last == per_user - 2, last == per_user - 1
    ts = pa.array((1_600_000_000 + np.arange(pos_u.size)) * 1_000_000, pa.timestamp("us", "UTC"))
    _write_parquet(
        pa.table(
            {
                "user_idx": pa.array(pos_u[train], pa.int32()),
                "item_idx": pa.array(pos_i[train], pa.int32()),
                "ts": ts.filter(pa.array(train)),
            }
        ),
        base / "train",
        files,
        row_group_size,
    )
    # Timestamps grow with the row number: a user's newest training items are its last rows.
    hist_users = np.arange(1, users + 1)
    hist_items = [pos_i[train & (pos_u == u)][::-1][:history_length].tolist() for u in hist_users]
    hist_ts = [ts.filter(pa.array(train & (pos_u == u))).to_pylist()[::-1][:history_length]
               for u in hist_users]  # fmt: skip
    history = pa.table(
        {
            "user_idx": pa.array(hist_users, pa.int32()),
            "item_idx": pa.array(hist_items, pa.list_(pa.int32())),
            "ts": pa.array(hist_ts, pa.list_(pa.timestamp("us", "UTC"))),
        }
    )
    _write_parquet(history, base / "history", 1, row_group_size)
    seen_table = pa.table(
        {"user_idx": pa.array(pos_u, pa.int32()), "item_idx": pa.array(pos_i, pa.int32())}
    )
    _write_parquet(seen_table, base / "seen", 1, row_group_size)
    for name, mask in (("validation", val), ("test", test)):
        table = _eval_table(pos_u[mask], pos_i[mask], negatives_for(pos_u[mask]))
        _write_parquet(table, base / name, 1, row_group_size)

    group_tokens = ["<unk>", *[f"g{g}" for g in range(groups)]]
    user_profile = pa.table(
        {
            "user_idx": pa.array(np.arange(1, users + 1), pa.int32()),
            "segment_idx": pa.array(user_group[1:] + 1, pa.int32()),
            "activity": pa.array(rng.random(users), pa.float32()),
        }
    )
    affinity = np.eye(groups, dtype=np.float32)[item_group[1:]]
    item_profile = pa.table(
        {
            "item_idx": pa.array(np.arange(1, items + 1), pa.int32()),
            "genre_idx": pa.array(item_group[1:] + 1, pa.int32()),
            "popularity": pa.array(rng.random(items), pa.float32()),
            "genre_mix": pa.array(affinity.tolist(), pa.list_(pa.float32())),
        }
    )
    if item_content:
        one_hot = np.eye(groups + 1, dtype=np.float32)[item_group[1:] + 1]
        item_profile = item_profile.append_column(
            "category_multi_hot", pa.array(one_hot.tolist(), pa.list_(pa.float32()))
        )
    _write_parquet(user_profile, base / "user_profile", 1, row_group_size)
    _write_parquet(item_profile, base / "item_profile", 1, row_group_size)

    vocab_dir = base / "vocab"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    vocabs = {
        "user_id": ["<unk>", *[str(u) for u in range(1, users + 1)]],
        "item_id": ["<unk>", *[str(i) for i in range(1, items + 1)]],
        "segment": group_tokens,
        "genre": group_tokens,
        **({"category": group_tokens} if item_content else {}),
    }
    for name, tokens in vocabs.items():
        id_type = "int" if name.endswith("_id") else "string"
        body = {"name": name, "min_frequency": 1, "id_type": id_type, "tokens": tokens}
        (vocab_dir / f"{name}.json").write_text(json.dumps(body))
    features = [
        {"name": "segment", "type": "categorical", "table": "user", "vocab_size": groups + 1,
         "dim": 1},
        {"name": "activity", "type": "dense", "table": "user", "dim": 1},
        {"name": "genre", "type": "categorical", "table": "item", "vocab_size": groups + 1,
         "dim": 1},
        {"name": "popularity", "type": "dense", "table": "item", "dim": 1},
        {"name": "genre_mix", "type": "vector", "table": "item", "dim": groups},
    ]  # fmt: skip
    if item_content:
        features.append({"name": "category_multi_hot", "type": "vector", "table": "item",
                         "vocab": "category", "dim": groups + 1})  # fmt: skip
    counts = {
        "users": users,
        "items": items,
        "train": int(train.sum()),
        "validation": int(val.sum()),
        "test": int(test.sum()),
        "seen": len(seen),
        "history": users,
    }
    digest = hashlib.sha256(json.dumps([seed, users, items, groups, per_user]).encode())
    manifest = {
        "dataset": "synthetic-test",
        "kind": "synthetic",
        "created_at": "2026-01-01T00:00:00Z",
        "config": {"seed": seed},
        "features": features,
        "paths": {},
        "counts": counts,
        "history_length": history_length,
        "checksum": f"sha256:{digest.hexdigest()}",
    }
    (base / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return base
