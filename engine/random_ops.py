"""Random ops: random_normal, truncated_normal, random_uniform, set_random_seed."""

from __future__ import annotations

__all__: list[str] = []
