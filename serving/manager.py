"""The model manager: scans the model repository, loads the versions each model's policy
selects, and swaps them in and out without failing a request.

A version goes LOADING -> (load, validate signature/assets, warm up) -> AVAILABLE, or
-> END with an error when it is refused; a refused version keeps its error in the status
until its directory changes (then it is tried again).  A version leaves service by
UNLOADING: it stops taking new requests at once and is dropped when its last in-flight
request finishes (`acquire` counts them).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peppercorn.config import ServedModelConfig
from serving import errors
from serving.metrics import ServerMetrics
from serving.model import LoadError, ServedVersion, default_loader, load_version

__all__ = ["ModelManager", "VersionSlot"]

log = logging.getLogger(__name__)
_VERSION_DIR = re.compile(r"^[0-9]{1,18}$")


@dataclass
class VersionSlot:
    """One version's place in the manager: its state, error and in-flight request count."""

    version: int
    state: str = "LOADING"
    error_code: str = "OK"
    error_message: str = ""
    served: ServedVersion | None = None
    inflight: int = 0
    fingerprint: tuple | None = None

    def as_tf_status(self) -> dict:
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


@dataclass
class _Model:
    config: ServedModelConfig
    slots: dict[int, VersionSlot]
    unloaded: bool = False


def _fingerprint(path: Path) -> tuple:
    try:
        return tuple(
            sorted(
                (str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                for p in path.rglob("*")
            )
        )
    except OSError:
        return ("<unreadable>",)


class ModelManager:
    """Loads, serves and retires model versions from one repository directory."""

    def __init__(
        self,
        repository: Path,
        models: dict[str, ServedModelConfig],
        metrics: ServerMetrics,
        loader: Callable[[Path], Any] = default_loader,
        warmup_requests: int = 3,
    ):
        self.repository = repository
        self.metrics = metrics
        self._loader = loader
        self._warmup = warmup_requests
        self._configured = bool(models)
        self._models: dict[str, _Model] = {n: _Model(c, {}) for n, c in models.items()}
        self._lock = threading.Lock()  # guards _models and every slot's fields
        self._poll_lock = threading.Lock()  # one scan/load pass at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, interval_s: float) -> None:
        """Poll the repository now and then every `interval_s` seconds, in a daemon thread."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="model-poller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # the poller must survive anything a bad version throws
                log.exception("model repository poll failed")
            self._stop.wait(interval_s)

    # ---- scanning and loading --------------------------------------------------------
    def _discover(self) -> None:
        if self._configured or not self.repository.is_dir():
            return
        with self._lock:
            if self._models:
                return
            for child in sorted(self.repository.iterdir()):
                if child.is_dir() and not child.name.startswith("."):
                    self._models[child.name] = _Model(ServedModelConfig(), {})

    def _versions_on_disk(self, name: str) -> dict[int, Path]:
        root = self.repository / name
        if not root.is_dir():
            return {}
        return {int(p.name): p for p in root.iterdir() if _VERSION_DIR.match(p.name) and p.is_dir()}

    def poll(self, only: str | None = None) -> None:
        """One pass: load what each model's policy wants, retire what it no longer wants."""
        with self._poll_lock:
            self._discover()
            for name in list(self._models):
                if only is None or name == only:
                    self._poll_model(name)

    def _poll_model(self, name: str) -> None:
        model = self._models[name]
        if model.unloaded:
            return
        on_disk = self._versions_on_disk(name)
        cfg = model.config
        if cfg.policy == "specific":
            wanted_list = sorted((v for v in cfg.versions if v in on_disk), reverse=True)
            quota = len(wanted_list)
        else:
            wanted_list = sorted(on_disk, reverse=True)
            quota = cfg.latest if cfg.policy == "latest" else len(wanted_list)
        keep: set[int] = set()
        for version in wanted_list:
            if len(keep) >= quota:
                break
            if self._ensure_loaded(name, version, on_disk[version]):
                keep.add(version)
        self._retire(name, lambda slot: slot.state == "AVAILABLE" and slot.version not in keep)
        with self._lock:
            for version in [v for v, s in model.slots.items() if s.state == "END"]:
                if version not in on_disk:
                    del model.slots[version]  # a refused version whose directory is gone

    def _ensure_loaded(self, name: str, version: int, path: Path) -> bool:
        model = self._models[name]
        with self._lock:
            slot = model.slots.get(version)
            if slot is not None and slot.state == "AVAILABLE":
                return True
        fingerprint = _fingerprint(path)
        if slot is not None and slot.state == "END" and slot.fingerprint == fingerprint:
            return False  # refused before and unchanged since
        new = VersionSlot(version)
        with self._lock:
            model.slots[version] = new
        try:
            served = load_version(name, version, path, self._loader)
            served.warm_up(self._warmup)
        except LoadError as exc:
            return self._refuse(name, new, fingerprint, exc.code, exc.message)
        except Exception as exc:  # an engine bug must not stop the poller either
            log.exception("loading %s version %s failed", name, version)
            return self._refuse(name, new, fingerprint, "UNKNOWN", f"{type(exc).__name__}: {exc}")
        with self._lock:
            new.served, new.state = served, "AVAILABLE"
        self.metrics.swaps.labels(name).inc()
        self._update_gauge(name)
        log.info("model %s version %s is AVAILABLE", name, version)
        return True

    def _refuse(self, name: str, slot: VersionSlot, fp: tuple, code: str, message: str) -> bool:
        with self._lock:
            slot.state, slot.error_code, slot.error_message = "END", code, message
            slot.fingerprint = fp
        self.metrics.load_failures.labels(name).inc()
        log.error("model %s version %s refused: %s: %s", name, slot.version, code, message)
        return False

    def _retire(self, name: str, which: Callable[[VersionSlot], bool]) -> None:
        model = self._models[name]
        with self._lock:
            for slot in list(model.slots.values()):
                if which(slot):
                    slot.state = "UNLOADING"
                    self._drop_if_idle(model, slot)
        self._update_gauge(name)

    def _drop_if_idle(self, model: _Model, slot: VersionSlot) -> None:
        # caller holds self._lock
        if slot.state == "UNLOADING" and slot.inflight == 0:
            slot.served = None
            slot.state = "END"
            if model.slots.get(slot.version) is slot:
                del model.slots[slot.version]

    def _update_gauge(self, name: str) -> None:
        with self._lock:
            n = sum(s.state == "AVAILABLE" for s in self._models[name].slots.values())
        self.metrics.loaded_versions.labels(name).set(n)

    # ---- admin -----------------------------------------------------------------------
    def reload(self, name: str) -> list[dict]:
        """Serve a model again (after `unload`), retry refused versions, rescan now."""
        model = self._get(name)
        with self._lock:
            model.unloaded = False
            for slot in model.slots.values():
                slot.fingerprint = None
        self.poll(only=name)
        return self.status(name)

    def unload(self, name: str) -> None:
        """Stop serving every version of a model until `reload`; in-flight requests finish."""
        model = self._get(name)
        with self._poll_lock:
            model.unloaded = True
            self._retire(name, lambda slot: slot.state == "AVAILABLE")

    # ---- queries ---------------------------------------------------------------------
    def _get(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise errors.model_not_found(name)
        return model

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def ready(self) -> bool:
        """At least one model, and one AVAILABLE version of each model not unloaded."""
        with self._lock:
            live = [m for m in self._models.values() if not m.unloaded]
            return bool(self._models) and all(
                any(s.state == "AVAILABLE" for s in m.slots.values()) for m in live
            )

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list:
        """TF Serving's `model_version_status` entries (all versions, or the one asked for)."""
        model = self._get(name)
        with self._lock:
            if label is not None:
                version = self._label_version(name, model, label)
            slots = sorted(model.slots.values(), key=lambda s: -s.version)
            if version is not None:
                slots = [s for s in slots if s.version == version]
                if not slots:
                    raise errors.version_not_found(name, version)
            if not slots and not model.unloaded:
                raise errors.model_not_found(name)
            return [s.as_tf_status() for s in slots]

    def _label_version(self, name: str, model: _Model, label: str) -> int:
        version = model.config.labels.get(label)
        if version is None:
            raise errors.label_not_found(name, label)
        return version

    @contextmanager
    def acquire(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[ServedVersion]:
        """The version to serve (latest AVAILABLE unless asked), held until the block ends."""
        model = self._get(name)
        with self._lock:
            if label is not None:
                version = self._label_version(name, model, label)
            live = [s for s in model.slots.values() if s.state == "AVAILABLE"]
            if version is None:
                if not live:
                    if model.unloaded:
                        raise errors.ServingError(404, f"model {name} is unloaded")
                    raise errors.model_not_ready(name)
                slot = max(live, key=lambda s: s.version)
            else:
                slot = next((s for s in live if s.version == version), None)
                if slot is None:
                    raise errors.version_not_found(name, version)
            slot.inflight += 1
            served = slot.served
        try:
            yield served
        finally:
            with self._lock:
                slot.inflight -= 1
                self._drop_if_idle(model, slot)
