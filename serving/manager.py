"""The model manager: polls the model repository, loads the versions each model's policy
selects, and swaps them in and out without failing a request.

Everything about the repository goes through `peppercorn.model_repository`: which models
there are (`models()`; with no `serving.models` configured, every poll picks up new names),
which versions a policy serves (`select()`), reading one (`ExportedVersion.open()`, through
the `loader` seam), and whether a refused version changed since (`fingerprint()`).

A version goes LOADING -> (open: checksums, signature, assets; warm-up) -> AVAILABLE, or
-> END with an error when it is refused; a refused version keeps its error in the status
until its files change (then it is tried again).  A version leaves service by UNLOADING: it
stops taking new requests at once and is dropped when its last in-flight request finishes
(`acquire` counts them).

TF Serving labels start from the config's; with a `label_source` (the model registry's
aliases, `serving.registry_labels`) each poll also loads the versions the aliases name and
moves a label once its version is AVAILABLE (`serving.labels`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from peppercorn.config import ServedModelConfig
from peppercorn.loaded_version import LoadedVersion, VersionError
from peppercorn.model_repository import ExportedVersion, ModelRepository
from serving import errors
from serving.labels import ModelLabels
from serving.metrics import ServerMetrics
from serving.registry_labels import LabelSource
from serving.warmup import warm_up

__all__ = ["Loader", "ModelManager", "VersionSlot", "open_version"]

log = logging.getLogger(__name__)

Loader = Callable[[ExportedVersion], LoadedVersion]


def open_version(version: ExportedVersion) -> LoadedVersion:
    """The default loader: the repository's one reader."""
    return version.open()


@dataclass
class VersionSlot:
    """One version's place in the manager: its state, error and in-flight request count."""

    version: int
    state: str = "LOADING"
    error_code: str = "OK"
    error_message: str = ""
    served: LoadedVersion | None = None
    inflight: int = 0
    fingerprint: tuple | None = None

    def as_tf_status(self) -> dict:
        """TF Serving's `model_version_status` entry for this version."""
        return {
            "version": str(self.version),
            "state": self.state,
            "status": {"error_code": self.error_code, "error_message": self.error_message},
        }


@dataclass
class _Model:
    config: ServedModelConfig
    slots: dict[int, VersionSlot]
    configured: bool = False
    exported: bool = False  # it had a complete version at the last poll
    unloaded: bool = False
    labels: ModelLabels | None = None
    # Versions loaded only because a label names them: they answer their label and their
    # number, never a request for the model's latest version (a canary must not take it).
    label_only: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.labels is None:
            self.labels = ModelLabels(self.config.labels)

    @property
    def has_latest(self) -> bool:
        """Whether a version answers requests that name no version or label."""
        live = (v for v, s in self.slots.items() if s.state == "AVAILABLE")
        return any(v not in self.label_only for v in live)

    @property
    def counts_for_readiness(self) -> bool:
        # A discovered folder with nothing complete in it yet (a first export still being
        # written) must not take a server that serves other models out of rotation.
        return self.configured or self.exported


class ModelManager:
    """Loads, serves and retires model versions from one `ModelRepository`."""

    def __init__(
        self,
        repository: ModelRepository,
        models: dict[str, ServedModelConfig],
        metrics: ServerMetrics,
        loader: Loader = open_version,
        warmup_requests: int = 3,
        label_source: LabelSource | None = None,
    ):
        self.repository = repository
        self.label_source = label_source
        self.metrics = metrics
        self._loader = loader
        self._warmup = warmup_requests
        self._configured = bool(models)
        self._models = {n: _Model(c, {}, configured=True) for n, c in models.items()}
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
        """Stop polling (a load in progress finishes first, up to 30 s)."""
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
        if self._configured:
            return
        names = self.repository.models()
        with self._lock:
            for name in names:
                if name not in self._models:
                    self._models[name] = _Model(ServedModelConfig(), {})
                    log.info("model %s found in %s", name, self.repository.uri)

    def poll(self, only: str | None = None) -> None:
        """One pass: load what each model's policy wants, retire what it no longer wants."""
        with self._poll_lock:
            self._discover()
            names = [n for n in self._models if only is None or n == only]
            # Every model's complete versions first, then the loads: a model whose turn to
            # load comes later must already count for readiness, or the server would report
            # ready with only the first model loaded.
            planned = {}
            for name in names:
                if not self._models[name].unloaded:
                    planned[name] = self._candidates(name, self._models[name].config)
                    with self._lock:
                        self._models[name].exported = bool(planned[name][0])
            for name, plan in planned.items():
                self._poll_model(name, plan)

    def _candidates(self, name: str, config: ServedModelConfig) -> tuple[list[int], int]:
        """The versions to try, newest first, and how many of them to serve."""
        if config.policy == "latest":
            # Every complete version is a candidate: while the newest is refused, the next
            # newest keeps (or starts) serving.
            every = config.model_copy(update={"policy": "all"})
            return self.repository.select(name, every), config.latest
        chosen = self.repository.select(name, config)
        return chosen, len(chosen)

    def _poll_model(self, name: str, plan: tuple[list[int], int]) -> None:
        model = self._models[name]
        candidates, quota = plan
        keep: set[int] = set()
        for version in candidates:
            if len(keep) >= quota:
                break
            if self._ensure_loaded(model, ExportedVersion(self.repository, name, version)):
                keep.add(version)
        pinned = self._follow_aliases(model, name, candidates, keep)
        keep |= pinned
        self._retire(name, lambda slot: slot.state == "AVAILABLE" and slot.version not in keep)
        with self._lock:
            for version in [v for v, s in model.slots.items() if s.state == "END"]:
                if version not in candidates and version not in pinned:
                    del model.slots[version]  # a refused version that is no longer there

    def _follow_aliases(
        self, model: _Model, name: str, candidates: list[int], served: set[int]
    ) -> set[int]:
        """Read the aliases (outside the lock, like the repository), load the versions they
        name, move the labels; returns the versions the labels keep loaded (`served`: the
        policy's)."""
        aliases = None if self.label_source is None else self.label_source.aliases(name)
        if aliases is None:  # no registry, or one that cannot be read: labels stay
            with self._lock:
                model.label_only = model.labels.pinned() - served
                return model.labels.pinned()
        present = set(candidates)
        if any(t.version is not None and t.version not in present for t in aliases.values()):
            present = set(self.repository.versions(name))  # a version outside the policy's
        extra = [v for v in model.labels.to_load(aliases, present) if v not in served]
        with self._lock:
            model.label_only |= set(extra)  # before it is AVAILABLE
        for version in extra:
            self._ensure_loaded(model, ExportedVersion(self.repository, name, version))
        with self._lock:
            changes = model.labels.update(aliases, present, model.slots)
            pinned = model.labels.pinned()
            model.label_only = pinned - served
        for problem, message in changes:
            log.log(logging.WARNING if problem else logging.INFO, "model %s: %s", name, message)
        return pinned

    def _ensure_loaded(self, model: _Model, exported: ExportedVersion) -> bool:
        name, version = exported.name, exported.version
        with self._lock:
            slot = model.slots.get(version)
            if slot is not None and slot.state == "AVAILABLE":
                return True
        fingerprint = exported.fingerprint()
        if slot is not None and slot.state == "END" and slot.fingerprint == fingerprint:
            return False  # refused before and unchanged since
        new = VersionSlot(version)
        with self._lock:
            model.slots[version] = new
        try:
            served = self._loader(exported)
            warm_up(served, self._warmup)
        except VersionError as exc:
            return self._refuse(name, new, fingerprint, exc.code, exc.message)
        except OSError as exc:
            # Reading failed (a remote store's hiccup, a version deleted while read): not a
            # verdict on the version, so no fingerprint, and the next poll tries again.
            return self._refuse(name, new, None, "UNAVAILABLE", f"cannot read: {exc}")
        except Exception as exc:  # an engine bug must not stop the poller either
            log.exception("loading %s version %s failed", name, version)
            return self._refuse(name, new, fingerprint, "UNKNOWN", f"{type(exc).__name__}: {exc}")
        with self._lock:
            new.served, new.state = served, "AVAILABLE"
        self.metrics.swaps.labels(name).inc()
        self._update_gauge(name)
        log.info("model %s version %s is AVAILABLE", name, version)
        return True

    def _refuse(
        self, name: str, slot: VersionSlot, fp: tuple | None, code: str, message: str
    ) -> bool:
        with self._lock:
            slot.state, slot.error_code = "END", code
            slot.error_message = self._relative(message)
            slot.fingerprint = fp
        self.metrics.load_failures.labels(name).inc()
        log.error("model %s version %s refused: %s: %s", name, slot.version, code, message)
        return False

    def _relative(self, message: str) -> str:
        # The status endpoints answer anyone: paths there are relative to the repository,
        # and only the log shows where the repository is.
        for root in sorted({self.repository.uri, self.repository.path}, key=len, reverse=True):
            message = message.replace(root.rstrip("/") + "/", "")
        return message

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
        """Every model the server knows (configured, or found in the repository)."""
        with self._lock:
            return sorted(self._models)

    def not_ready(self) -> list[str]:
        """Why the server is not ready (empty when it is): it is ready when it serves at
        least one model and every served model has an AVAILABLE version. Served: configured,
        or found in the repository with a complete version; an unloaded model has none, so
        a load balancer stops sending requests that would all get 404."""
        with self._lock:
            served = {n: m for n, m in self._models.items() if m.counts_for_readiness}
            if not served:
                return ["no model is served yet"]
            return [
                f"model {name} is unloaded" if m.unloaded else f"model {name} has no version loaded"
                for name, m in sorted(served.items())
                if not m.has_latest
            ]

    def ready(self) -> bool:
        """Every served model has a version to answer with (see `not_ready`)."""
        return not self.not_ready()

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

    def labels(self, name: str) -> dict[str, dict]:
        """Every label of a model: its version, source, registry version and error."""
        model = self._get(name)
        with self._lock:
            return model.labels.status()

    def _label_version(self, name: str, model: _Model, label: str) -> int:
        found = model.labels.get(label)
        if found is None or found.version is None:
            error = errors.label_not_found(name, label)
            if found is not None and found.error:  # an alias naming a version not served
                error = errors.ServingError(404, f"{error.message}: {found.error}")
            raise error
        return found.version

    @contextmanager
    def acquire(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[LoadedVersion]:
        """The version to serve (latest AVAILABLE unless asked), held until the block ends."""
        model = self._get(name)
        with self._lock:
            if label is not None:
                version = self._label_version(name, model, label)
            live = [s for s in model.slots.values() if s.state == "AVAILABLE"]
            if version is None:
                live = [s for s in live if s.version not in model.label_only]
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
