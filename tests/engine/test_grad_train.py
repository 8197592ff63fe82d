"""Gradient coverage of tf.train's ops: the schedules are not differentiable (as in TF-1 use)."""

from __future__ import annotations

CASES: list = []
NOT_DIFFERENTIABLE = {"exponential_decay", "piecewise_constant"}
