"""get_variable, variable_scope (reuse) and name_scope."""

from __future__ import annotations

__all__: list[str] = []
