"""Where tracked runs and registered versions live, and the one way to reach them.

`TrackingTarget.from_config(cfg)` resolves the config's `tracking` section: the URI is
`tracking.uri`, else `MLFLOW_TRACKING_URI`, else a SQLite store `mlflow.db` under a local
data root (a remote data root has no file SQLite could lock: then `.mlflow/mlflow.db`
here). A SQLite store keeps artifacts in `mlartifacts/` beside it, a tracking server where it
is configured to. `PEPPERCORN_TRACKING=off` (or `0`, `false`, `no`) turns tracking off without
touching the config, for a cron line or a test session.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peppercorn.config import Config
from peppercorn.fs import is_local

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["TrackingTarget", "tracking_disabled_by_env"]

_OFF = {"0", "off", "false", "no"}
# A tracking server that is down must not hold training up for minutes: MLflow's own default
# retries an unanswered request 7 times with exponential backoff (about 4 minutes).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def tracking_disabled_by_env() -> bool:
    """Whether `PEPPERCORN_TRACKING` turns tracking off."""
    return os.environ.get("PEPPERCORN_TRACKING", "").strip().lower() in _OFF


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://").removeprefix("file:")).resolve()


def _sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path: sqlite:////abs/path.db


@dataclass(frozen=True)
class TrackingTarget:
    """A resolved tracking store: URIs, experiment name and artifact location."""

    uri: str
    registry_uri: str
    experiment: str
    artifact_location: str | None = None
    enabled: bool = True

    @classmethod
    def from_config(cls, cfg: Config) -> TrackingTarget:
        """The store `cfg` tracks into (see the module docstring for the defaults)."""
        t = cfg.tracking
        artifacts = t.artifact_location
        uri = t.uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            root = cfg.paths.data_root
            base = _local_path(root) if is_local(root) else Path(".mlflow").resolve()
            uri = _sqlite_uri(base / "mlflow.db")
            artifacts = artifacts or (base / "mlartifacts").as_uri()
        elif uri.startswith("sqlite:///") and artifacts is None:
            artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
        registry = t.registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or uri
        return cls(
            uri=uri,
            registry_uri=registry,
            experiment=t.experiment or cfg.dataset.name,
            artifact_location=artifacts,
            enabled=t.enabled and not tracking_disabled_by_env(),
        )

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a SQLite store (None for other stores)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        return Path(self.uri.removeprefix("sqlite:///"))

    def exists(self) -> bool:
        """False only for a SQLite store not created yet (reading it would create it)."""
        registry = self.registry_uri
        if registry.startswith("sqlite:///"):
            return Path(registry.removeprefix("sqlite:///")).exists()
        return True

    def unreachable(self) -> str | None:
        """Why the store cannot be used right now (None when it can): a tracking server that
        does not answer its health check within 3 s, a SQLite folder that cannot be made."""
        if self.uri.startswith(("http://", "https://")):
            try:
                with urllib.request.urlopen(self.uri.rstrip("/") + "/health", timeout=3):
                    return None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                return f"tracking server {self.uri} does not answer ({reason})"
        sqlite = self.sqlite_file
        if sqlite is not None:
            try:
                sqlite.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"cannot create the tracking store's folder {sqlite.parent}: {exc}"
        return None

    def client(self) -> MlflowClient:
        """An MLflow client of this store (MLflow is imported here, on first use)."""
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        if not sys.stderr.isatty():  # MLflow's own artifact bars would put \r into logs
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.registry_uri)

    def experiment_id(self, client: MlflowClient) -> str:
        """The experiment's id, created (with this target's artifact location) if missing."""
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            return client.create_experiment(self.experiment, self.artifact_location)
        except MlflowException:  # another run created it first
            return client.get_experiment_by_name(self.experiment).experiment_id
