"""TF-1's `tf.train.Saver` and `tf.train.latest_checkpoint`, in `.npz` files.

`save(sess, "dir/model", global_step=10)` writes `dir/model-10.npz` holding every saved
variable by name and the state of every optimizer that has state in the session (slots and
counters, `Optimizer.state_dict`), so a restored session continues training exactly.  The
`dir/checkpoint` state file is TF-1's text format (`model_checkpoint_path: "..."`).  Files
are written atomically (temporary file, then rename) and read with `allow_pickle=False`.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

import numpy as np

from engine.errors import NotFoundError
from engine.graph import Node, Variable, get_default_graph
from engine.optimizers import graph_optimizers

__all__ = [
    "CheckpointState",
    "Saver",
    "checkpoint_exists",
    "get_checkpoint_state",
    "latest_checkpoint",
]

_SUFFIX = ".npz"
_OPTIMIZERS_KEY = "__optimizers__"
_STATE_LINE = re.compile(r'^(model_checkpoint_path|all_model_checkpoint_paths):\s*"(.*)"\s*$')


class Saver:
    """Saves and restores variables (by name) and optimizer state; TF-1's signature."""

    def __init__(
        self,
        var_list=None,
        reshape=False,
        sharded=False,
        max_to_keep=5,
        keep_checkpoint_every_n_hours=10000.0,
        name=None,
        restore_sequentially=False,
        saver_def=None,
        builder=None,
        defer_build=False,
        allow_empty=False,
        write_version=2,
        pad_step_number=False,
        save_relative_paths=False,
        filename=None,
    ) -> None:
        if var_list is None:
            graph = get_default_graph()
            by_name = {v.name: v for v in graph.variables}
        elif isinstance(var_list, dict):
            by_name = dict(var_list)
        else:
            by_name = {}
            for var in var_list:
                if var.name in by_name:
                    raise ValueError(f"At least two variables have the same name: {var.name}")
                by_name[var.name] = var
        for key, var in by_name.items():
            if not isinstance(var, Variable):
                raise TypeError(f"Saver: {key!r} is a {type(var).__name__}, not a Variable")
        if not by_name and not allow_empty:
            raise ValueError("No variables to save")
        self._var_list = by_name
        self._graph = next(iter(by_name.values())).graph if by_name else get_default_graph()
        self._max_to_keep = max_to_keep
        self._pad_step_number = bool(pad_step_number)
        self._save_relative_paths = bool(save_relative_paths)
        self._filename = filename
        self._last_checkpoints: list[str] = []

    @property
    def last_checkpoints(self) -> list[str]:
        """The checkpoints this saver wrote and has not deleted, oldest first."""
        return list(self._last_checkpoints)

    def save(
        self,
        sess,
        save_path,
        global_step=None,
        latest_filename=None,
        meta_graph_suffix="meta",
        write_meta_graph=True,
        write_state=True,
        strip_default_attrs=False,
        save_debug_info=False,
    ) -> str:
        """Write a checkpoint; returns its path (`save_path-<global_step>` when a step is given)."""
        path = os.fspath(save_path)
        if global_step is not None:
            if isinstance(global_step, Node):
                global_step = sess.run(global_step)
            step = int(global_step)
            path = f"{path}-{step:08d}" if self._pad_step_number else f"{path}-{step}"
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            # TF 2's compat.v1 Saver creates the checkpoint's own folder, not missing parents.
            if not os.path.isdir(os.path.dirname(os.path.abspath(folder))):
                raise NotFoundError(
                    f"Failed to create a directory: {folder}; No such file or directory"
                )
            os.makedirs(folder, exist_ok=True)
        arrays = {f"variables/{k}": sess.get_value(v) for k, v in self._var_list.items()}
        names = []
        for key, optimizer in _optimizer_keys(sess.graph):
            state = optimizer.state_dict(sess)
            if not state:
                continue
            for name, value in state.items():
                arrays[f"optimizer_{len(names)}/{name}"] = value
            names.append(key)
        arrays[_OPTIMIZERS_KEY] = np.array(names, dtype=str)
        _write_atomically(path + _SUFFIX, arrays)
        if write_state:
            self._remember(path, latest_filename or "checkpoint")
        return path

    def restore(self, sess, save_path) -> None:
        """Set the saved variables and the optimizers' state in `sess` from `save_path`."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        file = os.fspath(save_path) + _SUFFIX
        if not os.path.isfile(file):
            raise ValueError(f"The passed save_path is not a valid checkpoint: {save_path}")
        with np.load(file, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        for key, var in self._var_list.items():
            value = data.get(f"variables/{key}")
            if value is None:
                raise NotFoundError(f"Key {key} not found in checkpoint {save_path}")
            sess.set_value(var, value)
        saved = [str(k) for k in data.get(_OPTIMIZERS_KEY, np.array([], dtype=str))]
        for key, optimizer in _optimizer_keys(sess.graph):
            if key not in saved:
                optimizer.load_state_dict(sess, {})
                continue
            prefix = f"optimizer_{saved.index(key)}/"
            state = {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}
            optimizer.load_state_dict(sess, state)

    def _remember(self, path: str, latest_filename: str) -> None:
        if path in self._last_checkpoints:
            self._last_checkpoints.remove(path)
        self._last_checkpoints.append(path)
        keep = self._max_to_keep
        if keep:
            while len(self._last_checkpoints) > keep:
                old = self._last_checkpoints.pop(0)
                with contextlib.suppress(FileNotFoundError):
                    os.remove(old + _SUFFIX)
        folder = os.path.dirname(path) or "."
        shown = [_shown(p, folder, self._save_relative_paths) for p in self._last_checkpoints]
        lines = [f'model_checkpoint_path: "{shown[-1]}"']
        lines += [f'all_model_checkpoint_paths: "{p}"' for p in shown]
        _write_text_atomically(os.path.join(folder, latest_filename), "\n".join(lines) + "\n")


def _shown(path: str, folder: str, relative: bool) -> str:
    return os.path.relpath(path, folder) if relative else path


def _optimizer_keys(graph) -> list[tuple[str, object]]:
    # Optimizers are told apart by name, a repeated name by its order of creation, which a
    # freshly built copy of the graph repeats.
    out, counts = [], {}
    for optimizer in graph_optimizers(graph):
        name = optimizer.get_name()
        n = counts.get(name, 0)
        counts[name] = n + 1
        out.append((name if n == 0 else f"{name}_{n}", optimizer))
    return out


def _write_atomically(path: str, arrays: dict) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_text_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class CheckpointState:
    """TF-1's CheckpointState: `model_checkpoint_path` and `all_model_checkpoint_paths`."""

    def __init__(self, model_checkpoint_path: str, all_model_checkpoint_paths: list[str]):
        self.model_checkpoint_path = model_checkpoint_path
        self.all_model_checkpoint_paths = all_model_checkpoint_paths


def get_checkpoint_state(checkpoint_dir, latest_filename=None) -> CheckpointState | None:
    """The `checkpoint` state file of `checkpoint_dir` (relative paths made absolute), or None."""
    folder = os.fspath(checkpoint_dir)
    file = os.path.join(folder, latest_filename or "checkpoint")
    if not os.path.isfile(file):
        return None
    latest, every = None, []
    with open(file) as f:
        for line in f:
            m = _STATE_LINE.match(line.strip())
            if not m:
                continue
            path = m.group(2)
            path = path if os.path.isabs(path) else os.path.join(folder, path)
            if m.group(1) == "model_checkpoint_path":
                latest = path
            else:
                every.append(path)
    if latest is None:
        return None
    return CheckpointState(latest, every)


def checkpoint_exists(checkpoint_prefix) -> bool:
    """Whether a checkpoint was written at `checkpoint_prefix`."""
    return os.path.isfile(os.fspath(checkpoint_prefix) + _SUFFIX)


def latest_checkpoint(checkpoint_dir, latest_filename=None) -> str | None:
    """The newest checkpoint's prefix named by `checkpoint_dir`'s state file, or None."""
    state = get_checkpoint_state(checkpoint_dir, latest_filename)
    if state is None or not checkpoint_exists(state.model_checkpoint_path):
        return None
    return state.model_checkpoint_path
