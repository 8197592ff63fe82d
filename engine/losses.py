"""TF-1's tf.losses namespace."""

from __future__ import annotations

__all__: list[str] = []
