"""One optimizer's state in one session: slots per variable, counters, packed dense groups.

TF-1 keeps one set of slots per (optimizer, variable), however many train ops the optimizer
built; so does `OptimizerState`.  `slots[var]` holds the canonical slot arrays.  For speed,
the dense variables of one train op are packed into one flat buffer (the session's values
and the slots become views into it) so an update rule runs once per step for all of them; a
variable belongs to at most one such group, and a train op whose variables are already
grouped differently updates them one by one, on the same slot arrays.

`optimizer_state_arrays` / `restore_optimizer_state` are the old checkpoint API, kept as thin
wrappers over `Optimizer.state_dict` / `Optimizer.load_state_dict`.
"""

from __future__ import annotations

import numpy as np

from engine.backend import to_numpy
from engine.sparse import IndexedSlices

__all__ = ["OptimizerState", "optimizer_state_arrays", "restore_optimizer_state"]


class _Group:
    """Dense variables whose values and slots are views into flat buffers."""

    __slots__ = ("flat", "scratch", "slot_flats", "variables", "views")

    def __init__(self, variables, flat, views, slot_flats) -> None:
        self.variables = variables
        self.flat = flat
        self.views = views
        self.slot_flats = slot_flats
        self.scratch: dict = {}


class OptimizerState:
    """Slots by variable, non-slot counters (e.g. Adam's beta powers) and packed groups."""

    def __init__(self) -> None:
        self.slots: dict = {}  # variable -> {slot name: array}
        self.counters: dict[str, float] = {}  # TF-1's non-slot variables, per optimizer
        self.owner: dict = {}  # variable -> the _Group whose buffers hold it
        self.groups: dict[tuple, _Group] = {}
        self.scratch: dict = {}  # variable -> scratch buffers of per-variable updates

    def slots_for(self, optimizer, xp, var, value) -> dict:
        """`var`'s slots, created at the optimizer's initial values on first use."""
        slots = self.slots.get(var)
        if slots is None:
            slots = self.slots[var] = {
                name: xp.full_like(value, init) for name, init in optimizer._slot_inits().items()
            }
        return slots

    def apply(self, optimizer, xp, store, variables, grads, hyper) -> None:
        """One update of `variables` (values in `store`) with this run's `grads`."""
        dense_vars, dense_grads = [], []
        for var, g in zip(variables, grads, strict=True):
            if type(g) is IndexedSlices:
                idx, rows = g.deduplicated(xp)
                value = store[var]
                slots = self.slots_for(optimizer, xp, var, value)
                optimizer._apply_sparse(xp, value, idx, rows, slots, hyper, self._scratch(var))
            else:
                dense_vars.append(var)
                dense_grads.append(g)
        if len(dense_vars) > 1:
            group = self._group(optimizer, xp, store, tuple(dense_vars))
            if group is not None:
                g = xp.concatenate([g.reshape(-1) for g in dense_grads])
                optimizer._apply_dense(xp, group.flat, g, group.slot_flats, hyper, group.scratch)
                return
        for var, g in zip(dense_vars, dense_grads, strict=True):
            value = store[var]
            slots = self.slots_for(optimizer, xp, var, value)
            optimizer._apply_dense(xp, value, g, slots, hyper, self._scratch(var))

    def _scratch(self, var) -> dict:
        return self.scratch.setdefault(var, {})

    def _intact(self, group: _Group, store) -> bool:
        return all(
            store.get(v) is w and self.owner.get(v) is group
            for v, w in zip(group.variables, group.views, strict=True)
        )

    def _dissolve(self, group: _Group) -> None:
        # The slot views stay valid arrays (they keep the old buffer alive); only the
        # ownership goes, so a later group may pack these variables again.
        for var in group.variables:
            if self.owner.get(var) is group:
                del self.owner[var]
        self.groups.pop(group.variables, None)

    def _group(self, optimizer, xp, store, key: tuple) -> _Group | None:
        group = self.groups.get(key)
        if group is not None:
            if self._intact(group, store):
                return group
            self._dissolve(group)
        for other in {self.owner[v] for v in key if v in self.owner}:
            if not self._intact(other, store):
                self._dissolve(other)
        if any(v in self.owner for v in key):
            return None  # grouped with other variables by another train op
        if len({store[v].dtype for v in key}) > 1:
            return None
        return self._pack(optimizer, xp, store, key)

    def _pack(self, optimizer, xp, store, key: tuple) -> _Group:
        # Current values and slots move into the flat buffers; store and slots get views.
        values = [store[v] for v in key]
        dtype, total = values[0].dtype, sum(int(a.size) for a in values)
        flat = xp.empty(total, dtype=dtype)
        views = _views(flat, values)
        for var, view, value in zip(key, views, values, strict=True):
            view[...] = value
            store[var] = view
        slot_flats = {}
        for name, init in optimizer._slot_inits().items():
            slot_flat = xp.empty(total, dtype=dtype)
            for var, view in zip(key, _views(slot_flat, values), strict=True):
                current = self.slots.get(var, {}).get(name)
                view[...] = init if current is None else current
                self.slots.setdefault(var, {})[name] = view
            slot_flats[name] = slot_flat
        group = _Group(key, flat, views, slot_flats)
        for var in key:
            self.owner[var] = group
            self.scratch.pop(var, None)
        self.groups[key] = group
        return group

    def arrays(self, optimizer, xp, store, variables) -> dict[str, np.ndarray]:
        """`{"<var>/<slot>": array, "<counter>": array}` (numpy copies), every var's slots."""
        out = {}
        for var in variables:
            slots = self.slots_for(optimizer, xp, var, store[var])
            for name, value in slots.items():
                out[f"{var.name}/{name}"] = np.array(to_numpy(value), copy=True)
        # Counters not advanced yet (only slots were read) hold their initial values.
        for name, value in (self.counters or optimizer._counter_inits()).items():
            out[name] = np.array(value, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, optimizer, xp, variables, arrays: dict) -> OptimizerState:
        """The state `arrays` describes (see `arrays`); ValueError naming what is missing."""
        state = cls()
        for var in variables:
            slots = {}
            for name in optimizer._slot_inits():
                value = arrays.get(f"{var.name}/{name}")
                if value is None:
                    raise ValueError(
                        f"{optimizer.get_name()}: the state has no slot {name!r} for variable "
                        f"{var.name!r} (slots: {optimizer.get_slot_names()})"
                    )
                value = np.asarray(value)
                if value.shape != tuple(var.shape):
                    raise ValueError(
                        f"{optimizer.get_name()}: slot {var.name}/{name} has shape "
                        f"{value.shape}, the variable {tuple(var.shape)}"
                    )
                slots[name] = xp.array(value, dtype=var.dtype, copy=True)
            state.slots[var] = slots
        for name in optimizer._counter_inits():
            if name not in arrays:
                raise ValueError(f"{optimizer.get_name()}: the state has no counter {name!r}")
            state.counters[name] = float(np.asarray(arrays[name]).reshape(()))
        return state


def _views(flat, values) -> list:
    views, offset = [], 0
    for value in values:
        views.append(flat[offset : offset + value.size].reshape(value.shape))
        offset += value.size
    return views


def optimizer_state_arrays(session, optimizer) -> dict[str, np.ndarray]:
    """`optimizer.state_dict(session)` (the old name)."""
    return optimizer.state_dict(session)


def restore_optimizer_state(session, optimizer, train_op, arrays: dict[str, np.ndarray]) -> None:
    """`optimizer.load_state_dict(session, arrays)` (the old name; `train_op` is not needed)."""
    optimizer.load_state_dict(session, arrays)
