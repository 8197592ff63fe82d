"""Non-finite (NaN, ±inf) weights and scores, found and named in one place.

A diverged training run, a version with NaN weights in a few rows and a score that overflowed
all end the same way if nobody looks: a client gets NaN, or a 500 because JSON has no NaN.
Training checks its variables after every epoch, the repository refuses to write such a
version, the loader refuses to load one, and scoring refuses to answer with one.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["NonFiniteError", "describe_non_finite", "non_finite_report"]


class NonFiniteError(ArithmeticError):
    """Values that must be finite are not; the message names the array and the positions."""


def describe_non_finite(label: str, values: np.ndarray) -> str | None:
    """ "<label> has N non-finite values (...), first at index [...]"; None when all finite."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.inexact):  # integers are always finite
        return None
    bad = ~np.isfinite(values)
    count = int(np.count_nonzero(bad))
    if count == 0:
        return None
    nan = int(np.count_nonzero(np.isnan(values)))
    first = tuple(int(i) for i in np.argwhere(bad)[0]) if values.ndim else ()
    return (
        f"{label} has {count} non-finite values ({nan} NaN, {count - nan} inf) of "
        f"{values.size}, first at index {list(first)}"
    )


def non_finite_report(arrays: Mapping[str, np.ndarray], kind: str = "variable") -> str | None:
    """One line naming every array of `arrays` that holds NaN or inf (by name), or None."""
    found = [d for n in sorted(arrays) if (d := describe_non_finite(f"{kind} {n!r}", arrays[n]))]
    if not found:
        return None
    shown = "; ".join(found[:5])
    more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
    return f"{shown}{more}"
