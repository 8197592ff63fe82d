"""Server settings: the config file's `serving` section, overridden by the environment.

`model_repository` is anything `peppercorn.model_repository.ModelRepository` accepts: a local
path or a `file://`, `s3://`/`s3a://` or `hdfs://` URI.

Precedence is command line > environment (`PEPPERCORN_HOST`, `PEPPERCORN_PORT`, ...) >
config file > default.  The admin token is read from `PEPPERCORN_ADMIN_TOKEN` only, so it
never has to be written into a config file.

`registry_uri` is the model registry whose aliases move the TF Serving labels: tracking's
registry (`TrackingTarget.from_config`) unless tracking is off (`tracking.enabled`,
`PEPPERCORN_TRACKING=off`) or `serving.labels_from_registry` is false.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from peppercorn.config import (
    Config,
    ExperimentConfig,
    OnlineStoreConfig,
    RecommendConfig,
    ServedModelConfig,
    ServingConfig,
    join_uri,
)
from peppercorn.tracking.store import TrackingTarget

__all__ = ["Settings"]


class _CliOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str | None = None
    port: int | None = Field(None, gt=0, lt=65536)


# The config's `serving` section is the one source of the defaults below.
_DEFAULTS = ServingConfig()


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """Everything the server needs; build it with `Settings.from_config`."""

    model_config = SettingsConfigDict(env_prefix="PEPPERCORN_", extra="ignore")

    model_repository: str = "models"
    host: str = _DEFAULTS.host
    port: int = Field(_DEFAULTS.port, gt=0, lt=65536)
    poll_interval_s: float = Field(_DEFAULTS.poll_interval_s, gt=0)
    default_model: str | None = None
    models: dict[str, ServedModelConfig] = Field(default_factory=dict)
    max_body_bytes: int = Field(_DEFAULTS.max_body_bytes, gt=0)
    max_instances: int = Field(_DEFAULTS.max_instances, gt=0)
    # Latest `python -m batch` output answers /recommend when it matches (serving.precomputed).
    batch_output: str | None = None
    warmup_requests: int = Field(3, ge=1)
    # Requests scored at once, one per core (each scores with one BLAS thread); the others
    # wait their turn off the GIL, so the event loop still gets it to answer /readyz.
    scoring_threads: int = Field(default_factory=_cpus, ge=1)
    # Slow clients and connection counts: see serving.connections.
    header_timeout_s: float = Field(_DEFAULTS.header_timeout_s, gt=0)
    body_timeout_s: float = Field(_DEFAULTS.body_timeout_s, gt=0)
    keep_alive_s: float = Field(_DEFAULTS.keep_alive_s, gt=0)
    max_connections: int = Field(_DEFAULTS.max_connections, ge=1)
    admin_token: str | None = None
    recommend: RecommendConfig = Field(default_factory=RecommendConfig)
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)
    # The online store (None: none; from_config always names one) and its SQLite file.
    online_store: OnlineStoreConfig | None = None
    online_store_path: str | None = None
    # The dataset's raw folder (a synthetic-format dataset's): accepted events are appended to
    # its `events/` log, as JSON lines or CSV (`dataset.synthetic.format`).
    raw_root: str | None = None
    raw_events_format: str = "jsonl"
    # The model registry whose aliases move the labels (serving.registry_labels); None: none.
    registry_uri: str | None = Field(None, min_length=1)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, *_, **__):
        # The environment overrides the values passed in from the config file.
        return (env_settings, init_settings)

    @classmethod
    def from_config(cls, cfg: Config, **cli: Any) -> Settings:
        """Settings from a loaded config, the environment, then non-None `cli` overrides
        (`host`, `port`)."""
        section = cfg.serving.model_dump(exclude_none=True)  # unset: the defaults above
        # Requests without a model name go to the model this config trains.
        section["default_model"] = cfg.serving.default_model or cfg.model.name
        synthetic = cfg.dataset.kind == "synthetic"
        section.pop("labels_from_registry", None)
        tracking = TrackingTarget.from_config(cfg)
        labels_from_registry = cfg.serving.labels_from_registry and tracking.enabled
        settings = cls(
            registry_uri=tracking.registry_uri if labels_from_registry else None,
            model_repository=cfg.paths.model_repository,
            online_store=cfg.online_store,
            online_store_path=cfg.online_store_path(),
            # Other kinds' raw files are elsewhere and in their own formats: no online appends.
            raw_root=join_uri(cfg.dataset_root(), "raw") if synthetic else None,
            raw_events_format=cfg.dataset.synthetic.format,
            **section,
        )
        checked = _CliOverrides.model_validate(cli).model_dump(exclude_none=True)
        return settings.model_copy(update=checked) if checked else settings
