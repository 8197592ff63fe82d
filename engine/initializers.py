"""TF-1's tf.initializers namespace."""

from __future__ import annotations

__all__: list[str] = []
