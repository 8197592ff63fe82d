"""Server settings: the config file's `serving` section, overridden by the environment.

Precedence is command line > environment (`PEPPERCORN_HOST`, `PEPPERCORN_PORT`, ...) >
config file > default.  The admin token is read from `PEPPERCORN_ADMIN_TOKEN` only, so it
never has to be written into a config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from peppercorn.config import Config, ServedModelConfig

__all__ = ["Settings", "local_path"]


class _CliOverrides(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str | None = None
    port: int | None = Field(None, gt=0, lt=65536)


class Settings(BaseSettings):
    """Everything the server needs; build it with `Settings.from_config`."""

    model_config = SettingsConfigDict(env_prefix="PEPPERCORN_", extra="ignore")

    model_repository: str = "models"
    host: str = "127.0.0.1"
    port: int = Field(8501, gt=0, lt=65536)
    poll_interval_s: float = Field(2.0, gt=0)
    default_model: str | None = None
    models: dict[str, ServedModelConfig] = Field(default_factory=dict)
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_instances: int = Field(10_000, gt=0)
    # Latest `python -m batch` output answers /recommend when it matches (serving.precomputed).
    batch_output: str | None = None
    warmup_requests: int = Field(3, ge=1)
    admin_token: str | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, *_, **__):
        # The environment overrides the values passed in from the config file.
        return (env_settings, init_settings)

    @classmethod
    def from_config(cls, cfg: Config, **cli: Any) -> Settings:
        """Settings from a loaded config, the environment, then non-None `cli` overrides
        (`host`, `port`)."""
        s = cfg.serving
        settings = cls(
            model_repository=cfg.paths.model_repository,
            host=s.host,
            port=s.port,
            poll_interval_s=s.poll_interval_s,
            # Requests without a model name go to the model this config trains.
            default_model=s.default_model or cfg.model.name,
            models=s.models,
            max_body_bytes=s.max_body_bytes,
            max_instances=s.max_instances,
            batch_output=s.batch_output,
        )
        checked = _CliOverrides.model_validate(cli).model_dump(exclude_none=True)
        return settings.model_copy(update=checked) if checked else settings


def local_path(uri: str) -> Path:
    """The local directory behind a model repository root (a path or a `file://` URI)."""
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    if uri.startswith("file:"):
        return Path(uri[len("file:") :])
    if "://" in uri:
        raise ValueError(
            f"model repository {uri!r}: only local paths and file:// URIs can be served"
        )
    return Path(uri)
