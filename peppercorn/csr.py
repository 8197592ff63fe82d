"""Rows of a CSR table (per-user lists of item indices) as a dense, 0-padded matrix."""

from __future__ import annotations

import numpy as np

__all__ = ["padded_rows"]


def padded_rows(indptr: np.ndarray, indices: np.ndarray, users, width: int) -> np.ndarray:
    """[len(users), width] int32: each user's first `width` CSR entries, 0-padded.

    Users outside the CSR (index < 0 or >= len(indptr) - 1) get an empty row: 0 is padding,
    and also the unknown index, so an unknown user's history is empty.
    """
    users = np.asarray(users, np.int64).reshape(-1)
    n_rows = indptr.shape[0] - 1
    known = (users >= 0) & (users < n_rows)
    safe = np.where(known, users, 0)
    start = np.where(known, indptr[safe], 0) if n_rows > 0 else np.zeros(users.size, np.int64)
    stop = np.where(known, indptr[safe + 1], 0) if n_rows > 0 else start
    at = start[:, None] + np.arange(width)[None, :]
    valid = at < stop[:, None]
    out = np.zeros((users.size, width), np.int32)
    out[valid] = indices[at[valid]]
    return out
