"""TF-1's tf.nn namespace."""

from __future__ import annotations

__all__: list[str] = []
