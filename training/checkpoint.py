"""Per-epoch checkpoints in the engine's saved format, plus the trainer state needed to resume.

A checkpoint is `<dir>/epoch-NNNN/`, written atomically by `engine.save` with every
variable (extra_nodes) and two assets covered by its checksum:
- `trainer_state.json`: epoch, history, early-stopping state, elapsed time and the numpy
  Generator's `bit_generator.state` (so a resumed run draws the same negatives and shuffles);
- `optimizer.npz`: `Optimizer.state_dict` (`"<variable>/<slot>"` arrays and counters such as
  Adam's `beta1_power`), read back by `Optimizer.load_state_dict`, which also reads the older
  layout (`__step__`, `accum`).
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

from engine.saved import load as load_saved
from engine.saved import save as save_saved

__all__ = [
    "Checkpoint",
    "epoch_dir",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
]

_EPOCH_DIR = re.compile(r"^epoch-([0-9]{4,})$")
_STAGING_DIR = re.compile(r"^\.epoch-[0-9]{4,}\.tmp-")


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
    optimizer_state: dict[str, np.ndarray],
    state: dict[str, Any],
) -> Path:
    """Write epoch `epoch`'s checkpoint atomically; an existing one for that epoch is replaced.

    `optimizer_state` is the trainer's `optimizer.state_dict(session)`.
    """
    target = epoch_dir(folder, epoch)
    if target.exists():
        # Only reachable when a resumed run redoes an epoch whose checkpoint it did not trust.
        shutil.rmtree(target)
    buffer = io.BytesIO()
    np.savez(buffer, **optimizer_state)
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
    """Delete epoch checkpoints other than `keep` (the latest and the best are all resume
    needs), and the half-written ones a killed run left (`.epoch-NNNN.tmp-*`, engine.save's
    staging folders: one run owns this folder, so none of them is still being written)."""
    for epoch, path in _epochs(folder):
        if epoch not in keep:
            shutil.rmtree(path, ignore_errors=True)
    if folder.is_dir():
        for path in folder.iterdir():
            if _STAGING_DIR.match(path.name) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
