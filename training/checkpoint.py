"""Per-epoch checkpoints in the engine's saved format, plus the trainer state needed to resume.

A checkpoint is `<dir>/epoch-NNNN/`, written atomically by `training.graph.save` with every
variable (extra_nodes) and two assets covered by its checksum:
- `trainer_state.json`: epoch, history, early-stopping state, elapsed time and the numpy
  Generator's `bit_generator.state` (so a resumed run draws the same negatives and shuffles);
- `optimizer.npz`: the optimizer's slot arrays and counters, keyed by variable name.
Nothing is pickled: JSON and `.npz` read back with `allow_pickle=False`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.graph.backend import to_numpy
from training.graph.saved import load as load_saved
from training.graph.saved import save as save_saved

__all__ = [
    "Checkpoint",
    "epoch_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "optimizer_arrays",
    "prune_checkpoints",
    "restore_optimizer",
    "save_checkpoint",
]

_STEP_KEY = "__step__"
# Scratch buffers the engine keeps beside real slots; they carry no state.
_SCRATCH_SLOTS = {"tmp"}

_EPOCH_DIR = re.compile(r"^epoch-([0-9]{4,})$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: variable values by name, optimizer arrays and trainer state."""

    path: Path
    variables: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    state: dict[str, Any]


def epoch_dir(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:04d}"


def save_checkpoint(
    folder: Path,
    epoch: int,
    session,
    signatures: dict,
    optimizer_arrays: dict[str, np.ndarray],
    state: dict[str, Any],
) -> Path:
    """Write epoch `epoch`'s checkpoint atomically; an existing one for that epoch is replaced."""
    target = epoch_dir(folder, epoch)
    if target.exists():
        # Only reachable when a resumed run redoes an epoch whose checkpoint it did not trust.
        shutil.rmtree(target)
    buffer = io.BytesIO()
    np.savez(buffer, **optimizer_arrays)
    assets = {
        "trainer_state.json": json.dumps(state, indent=1, allow_nan=False).encode(),
        "optimizer.npz": buffer.getvalue(),
    }
    return Path(
        save_saved(target, session, signatures, assets=assets, extra_nodes=session.graph.variables)
    )


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (checksum verified by the engine)."""
    saved = load_saved(path)
    variables = {v.name: saved.session.get_value(v) for v in saved.graph.variables}
    with np.load(io.BytesIO(saved.assets["optimizer.npz"]), allow_pickle=False) as npz:
        optimizer = {k: npz[k] for k in npz.files}
    state = json.loads(saved.assets["trainer_state.json"].decode())
    return Checkpoint(Path(path), variables, optimizer, state)


def _epochs(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _EPOCH_DIR.match(p.name)
        if m and (p / "manifest.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint under `folder`, or None."""
    found = _epochs(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: Path, keep: set[int]) -> None:
    """Delete epoch checkpoints other than `keep` (the latest and the best are all resume needs)."""
    for epoch, path in _epochs(folder):
        if epoch not in keep:
            shutil.rmtree(path, ignore_errors=True)


def optimizer_arrays(session, optimizer) -> dict[str, np.ndarray]:
    """The optimizer's state in `session` as `{"<variable>/<slot>": array, "__step__": [n]}`.

    Works around the engine having no public slot API: it keeps slots per variable for
    row-sparse updates and, for dense variables, one flat buffer per group of variables; both
    are written here per variable so the file does not depend on that internal layout.
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


def restore_optimizer(session, optimizer, train_op, arrays: dict[str, np.ndarray]) -> None:
    """Put `optimizer_arrays` output back into `session` for `train_op`'s variables."""
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
