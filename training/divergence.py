"""Stopping a run whose weights stopped being numbers.

A learning rate too high for the data sends a loss to inf and the weights to NaN within a
few steps; from then on every epoch is wasted and, exported, the version answers NaN (or a
500) for every user whose rows went bad. The trainer checks after every epoch, before the
checkpoint is written, so a resumed run never starts from such weights either.
"""

from __future__ import annotations

import math

from peppercorn.finite import non_finite_report

__all__ = ["TrainingDiverged", "check_finite"]


class TrainingDiverged(ValueError):
    """Training produced a non-finite loss or weights; the message names the variables."""


def check_finite(session, graph, epoch: int, loss: float, phase: str = "epoch") -> None:
    """Raise TrainingDiverged if `loss` or any variable of `graph` in `session` is NaN/inf."""
    weights = {v.name: session.get_value(v) for v in graph.variables}
    problem = non_finite_report(weights)
    if problem is None and math.isfinite(loss):
        return
    what = problem or "every variable is finite, but the loss is not"
    raise TrainingDiverged(
        f"training diverged in {phase} {epoch} (mean loss {loss}): {what}. Nothing was "
        "exported; lower training.learning_rate or raise training.l2"
    )
