"""The server's reader of the model registry: which repository version each alias names.

The model manager asks once per poll and model (`RegistryLabels.aliases`) and moves its TF
Serving labels to match (`serving.labels`). MLflow is imported on the first reading, so a
server without registry labels never loads it. A registry that cannot be read (a tracking
server down, a locked or damaged SQLite file) answers None, which leaves every label where it
is; that is warned about once, and its recovery logged once. A SQLite registry whose file does
not exist yet has no aliases: it is not created (reading it would create it).

Every poll is a retry, so MLflow's own retries are off here, and a registry that takes long to
fail (a server that does not answer) is left alone for a while: polls load versions too, and
must not wait on it each time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from peppercorn.tracking.registry import AliasTarget, alias_targets, canonical_repository
from peppercorn.tracking.store import TrackingTarget

__all__ = ["LabelSource", "RegistryLabels"]

log = logging.getLogger(__name__)
# MLflow's HTTP client settings for the server's reads (where the environment sets none).
_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_SLOW_FAILURE_S = 1.0  # a failure slower than this is not retried for 10x its time
_QUIET_MAX_S = 60.0


class LabelSource(Protocol):
    """What the model manager reads aliases from (a test may pass its own)."""

    def aliases(self, model: str) -> dict[str, AliasTarget] | None:
        """Every alias of `model` and what it names; None when the source cannot be read
        right now (labels stay where they are)."""


class RegistryLabels:
    """Aliases of an MLflow model registry, resolved against one model repository."""

    def __init__(self, target: TrackingTarget, repository: str):
        self.target = target
        self.repository = canonical_repository(repository)
        self._client = None
        self._down: str | None = None  # why the last reading failed
        self._quiet_until = 0.0  # after a slow failure: no reading before this (monotonic)
        self._lock = threading.Lock()  # a status request and the poller may both read

    @classmethod
    def for_uri(cls, registry_uri: str, repository: str) -> RegistryLabels:
        """The reader of the registry at `registry_uri` (any MLflow registry URI)."""
        target = TrackingTarget(uri=registry_uri, registry_uri=registry_uri, experiment="")
        return cls(target, repository)

    def __repr__(self) -> str:
        return f"RegistryLabels({self.target.registry_uri!r}, {self.repository!r})"

    def aliases(self, model: str) -> dict[str, AliasTarget] | None:
        """Every alias of `model` and the version of the repository it names ({} when the
        registry does not exist yet or does not know the model; None when it cannot be
        read)."""
        with self._lock:
            if time.monotonic() < self._quiet_until:
                return None
            if not self.target.exists():
                self._recovered()
                return {}
            began = None
            try:
                if self._client is None:
                    for name, value in _HTTP.items():
                        os.environ.setdefault(name, value)
                    self._client = self.target.client()  # imports MLflow: seconds, once
                began = time.monotonic()
                found = alias_targets(self._client, model, self.repository)
            except Exception as exc:  # any registry error: serving goes on with its labels
                took = 0.0 if began is None else time.monotonic() - began
                if took > _SLOW_FAILURE_S:
                    self._quiet_until = time.monotonic() + min(10 * took, _QUIET_MAX_S)
                self._failed(exc)
                return None
            self._recovered()
            return found

    def _failed(self, exc: Exception) -> None:
        # MLflow's SQL errors carry the whole statement: its first line says what went wrong.
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        if self._down is None:
            log.warning(
                "model registry %s cannot be read, labels stay where they are until it can: %s",
                self.target.registry_uri,
                why,
            )
        self._down = why

    def _recovered(self) -> None:
        if self._down is not None:
            log.warning("model registry %s can be read again", self.target.registry_uri)
            self._down = None
