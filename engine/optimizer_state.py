"""An optimizer's per-session state as plain arrays, and back (checkpoints, resume).

State lives per session (`Session.optimizer_state`), never on the optimizer: these two functions
are the one place that knows its layout.
"""

from __future__ import annotations

import numpy as np

from engine.backend import to_numpy

__all__ = ["optimizer_state_arrays", "restore_optimizer_state"]

_STEP_KEY = "__step__"
# Scratch buffers the engine keeps beside real slots; they carry no state.
_SCRATCH_SLOTS = {"tmp"}


def optimizer_state_arrays(session, optimizer) -> dict[str, np.ndarray]:
    """The optimizer's state in `session` as `{"<variable>/<slot>": array, "__step__": [n]}`.

    The engine keeps slots per variable for row-sparse updates and, for dense variables, one
    flat buffer per group of variables; both come out per variable, so what a caller stores
    does not depend on that layout.
    """
    state = session.optimizer_state.get(optimizer)
    if state is None:
        return {_STEP_KEY: np.zeros(1, np.int64)}
    out = {_STEP_KEY: np.array([state["step"]], np.int64)}
    for var, slots in state.get("slots", {}).items():
        for name, value in slots.items():
            if name not in _SCRATCH_SLOTS:
                out[f"{var.name}/{name}"] = np.asarray(to_numpy(value)).reshape(var.shape)
    for variables, group in state.get("groups", {}).items():
        for name, flat in (group.get("slots") or {}).items():
            if name in _SCRATCH_SLOTS:
                continue
            flat = np.asarray(to_numpy(flat))
            offset = 0
            for var in variables:
                size = int(np.prod(var.shape, dtype=np.int64))
                out[f"{var.name}/{name}"] = flat[offset : offset + size].reshape(var.shape)
                offset += size
    return out


def _updated_sparsely(var) -> bool:
    # The engine's gather gradient w.r.t. its params is row-sparse; a variable read only as a
    # gather's params therefore gets per-variable slots, every other one a grouped slot.
    return bool(var.consumers) and all(
        c.op_type == "gather" and c.input_nodes[0] is var for c in var.consumers
    )


def restore_optimizer_state(session, optimizer, train_op, arrays: dict[str, np.ndarray]) -> None:
    """Put `optimizer_state_arrays` output back into `session` for `train_op`'s variables."""
    step = int(arrays.get(_STEP_KEY, np.zeros(1))[0])
    session.optimizer_state.pop(optimizer, None)
    if step == 0:
        return
    xp = session.xp
    per_var: dict = {}
    for var in train_op.variables:
        found = {
            key.rpartition("/")[2]: value
            for key, value in arrays.items()
            if key.rpartition("/")[0] == var.name
        }
        if not found and optimizer.slot_names:  # plain SGD keeps no per-variable state
            raise ValueError(f"checkpoint has no optimizer state for variable {var.name!r}")
        per_var[var] = found
    sparse = [v for v in train_op.variables if _updated_sparsely(v)]
    dense = tuple(v for v in train_op.variables if not _updated_sparsely(v))
    state = {"step": step, "slots": {}, "groups": {}}
    for var in sparse:
        state["slots"][var] = {
            k: xp.array(v, dtype=var.dtype, copy=True) for k, v in per_var[var].items()
        }
    if dense:
        if len({v.dtype for v in dense}) > 1:
            for var in dense:
                state["slots"][var] = {
                    k: xp.array(v, dtype=var.dtype, copy=True) for k, v in per_var[var].items()
                }
        else:
            names = per_var[dense[0]].keys()
            flat = {
                k: xp.asarray(np.concatenate([per_var[v][k].reshape(-1) for v in dense]))
                for k in names
            }
            state["groups"][dense] = {"views": None, "slots": flat}
    session.optimizer_state[optimizer] = state
