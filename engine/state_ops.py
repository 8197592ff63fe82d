"""Variable state and control: assign, assign_add, group, no_op, control_dependencies, ..."""

from __future__ import annotations

__all__: list[str] = []
