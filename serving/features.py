"""/predict's `features`: the documented keys a request may send, each validated and used.

`history` (raw item ids, newest first) is the history input of a model that reads one, in
place of the online store's and the exported history: a client that tracks the session itself
can score "what if the user had just watched these". Any other key is a 400, never ignored.
"""

from __future__ import annotations

import numpy as np

from peppercorn.loaded_version import LoadedVersion
from serving import errors

__all__ = ["FEATURE_KEYS", "history_feature"]

# The documented keys of /predict's `features`; any other is a 400, never silently ignored.
FEATURE_KEYS = ("history",)


def history_feature(served: LoadedVersion, features: dict | None) -> np.ndarray | None:
    """The history row a request's `features.history` (raw item ids, newest first) gives, or
    None; ServingError 400 naming an unknown key, a bad value or a model without history."""
    if not features:
        return None
    unknown = sorted(set(features) - set(FEATURE_KEYS))
    if unknown:
        raise errors.bad_argument(
            f"features: unknown key(s) {unknown}; accepted: {list(FEATURE_KEYS)}"
        )
    items = features["history"]
    if not isinstance(items, list) or not all(
        isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool)) for i in items
    ):
        raise errors.bad_argument("features.history: expected a list of item ids, newest first")
    if not served.history_length:
        raise errors.bad_argument(
            f"features.history: model {served.name} version {served.version} reads no history"
        )
    known = [i for i in (served.items.lookup(raw) for raw in items) if i]
    row = np.zeros(served.history_length, np.int32)
    row[: min(len(known), row.size)] = known[: row.size]
    return row
