"""Independent pandas computations of the split and the profiles, for the job tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = pd.Timedelta(days=1)
LOG1P = ("interactions_", "impressions_", "days_since_", "age_days", "watch_seconds_")


def token_order(tokens) -> list[str]:
    tokens = sorted(set(tokens))
    if all(t.lstrip("-").isdigit() for t in tokens):
        return sorted(tokens, key=int)
    return tokens


def leave_one_out(events: pd.DataFrame) -> tuple[set, set]:
    """(test, validation) raw (user_id, item_id) pairs under label `any`."""
    inter = events[events.event != "impression"]
    pos = inter.groupby(["user_id", "item_id"], as_index=False).ts.max()
    pos["item_key"] = pos.item_id.map(lambda s: int(s) if s.isdigit() else 0)
    pos = pos.sort_values(
        ["user_id", "ts", "item_key", "item_id"], ascending=[True, False, False, False]
    )
    test, val = set(), set()
    for user, rows in pos.groupby("user_id"):
        if len(rows) >= 3:
            test.add((user, rows.iloc[0].item_id))
            val.add((user, rows.iloc[1].item_id))
    return test, val


def activity(inter: pd.DataFrame, key: str, ids, ref, windows, values) -> pd.DataFrame:
    age = (ref - inter.ts) / DAY
    out = pd.DataFrame(index=pd.Index(ids, name=key))
    grouped = inter.assign(age=age).groupby(key)
    for w in windows:
        out[f"interactions_{w}d"] = grouped.age.apply(lambda a, w=w: (a < w).sum())
    out["interactions_all"] = grouped.size()
    out = out.fillna(0)
    out["days_since_last"] = grouped.age.min()
    for v in values:
        out[f"{v}_mean"] = grouped[v].mean()
        out[f"{v}_std"] = grouped[v].std(ddof=0)
    return out


def normalise(df: pd.DataFrame, columns) -> pd.DataFrame:
    """log1p where named so, then z-score with population std; missing -> 0."""
    out = df.copy()
    for c in columns:
        x = df[c].astype(float)
        if c.startswith(LOG1P):
            x = np.log1p(x.clip(lower=0))
        std = x.std(ddof=0)
        out[c] = ((x - x.mean()) / (std if std > 1e-12 else 1.0)).fillna(0.0)
    return out
