"""clip_by_norm and clip_by_global_norm."""

from __future__ import annotations

__all__: list[str] = []
