"""Initializers at TF-1's top level: zeros_initializer, glorot_uniform_initializer, ..."""

from __future__ import annotations

__all__: list[str] = []
