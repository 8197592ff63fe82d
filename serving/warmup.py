"""The server's own check of a freshly loaded version, before it takes traffic.

`peppercorn.loaded_version` verifies what a version holds (checksums, signature, assets);
what only a server cares about is that the graph actually answers: a few random requests
through the serving signature must return one probability per pair.
"""

from __future__ import annotations

import numpy as np

from peppercorn.loaded_version import (
    REQUIRED_OUTPUT,
    SERVING_SIGNATURE,
    LoadedVersion,
    VersionError,
)

__all__ = ["warm_up"]


def warm_up(version: LoadedVersion, requests: int) -> None:
    """Score `requests` random requests (one of size 1, the rest of 16) and check each
    answer's shape and range; raises VersionError("INTERNAL", ...) naming the problem."""
    rng = np.random.default_rng(0)
    for n in (1, *(16 for _ in range(requests - 1))):
        users = rng.integers(0, len(version.users), n, dtype=np.int32)
        items = rng.integers(0, len(version.items), n, dtype=np.int32)
        try:
            out = version.predict(SERVING_SIGNATURE, version.pair_inputs(users, items))
        except Exception as exc:  # whatever the graph throws, the version is not servable
            raise VersionError("INTERNAL", f"warm-up request failed: {exc}") from exc
        score = out.get(REQUIRED_OUTPUT)
        if score is None or score.reshape(-1).shape != (n,):
            got = None if score is None else score.shape
            raise VersionError("INTERNAL", f"warm-up: score has shape {got}, expected ({n},)")
        if not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1:
            raise VersionError("INTERNAL", "warm-up: scores are not probabilities in [0, 1]")
