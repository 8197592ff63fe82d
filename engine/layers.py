"""TF-1's tf.layers namespace (dense)."""

from __future__ import annotations

__all__: list[str] = []
