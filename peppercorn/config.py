"""Pipeline configuration: YAML files validated by pydantic models.

Every job takes a `Config` explicitly (from `load_config`); transforms never read
configuration themselves.  An invalid file raises `ConfigError` naming the file,
the key and what was expected.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "Config",
    "ConfigError",
    "ArmConfig",
    "DatasetConfig",
    "ExperimentConfig",
    "FeaturesConfig",
    "ModelConfig",
    "OnlineStoreConfig",
    "PathsConfig",
    "RecommendConfig",
    "ServingConfig",
    "SparkConfig",
    "SyntheticConfig",
    "TrainingConfig",
    "TrackingConfig",
    "BatchConfig",
    "load_config",
]


class _Section(BaseModel):
    # Unknown keys are errors: a typo in a config must not be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(_Section):
    """Size and shape of the generated live-streaming logs."""

    seed: int = 42
    users: int = Field(4000, gt=0)
    items: int = Field(600, gt=0)
    events: int = Field(200_000, gt=0, description="total raw event rows to generate")
    days: int = Field(30, gt=0)
    start_date: _dt.date = _dt.date(2026, 10, 1)
    latent_dim: int = Field(8, gt=0)
    categories: int = Field(12, gt=0)
    malformed_fraction: float = Field(0.01, ge=0.0, lt=1.0)
    format: Literal["jsonl", "csv"] = "jsonl"
    files: int = Field(4, gt=0, description="raw event files written (Spark partitions)")
    # Rooms over time (datagen.live). The defaults keep the original world, where every room
    # exists before start_date and may be shown at any moment, so older datasets stay valid.
    rooms_at_start: float = Field(
        1.0, gt=0.0, le=1.0, description="share of rooms created before start_date; the rest "
        "are created during the period, some on every day, and never shown before creation"
    )  # fmt: skip
    live_share: float = Field(
        0.0, ge=0.0, le=1.0, description="share of impressions showing a room during one of "
        "its live windows; 0 turns live windows off (any existing room, any time)"
    )  # fmt: skip
    live_days: float = Field(
        0.5, gt=0.0, le=1.0, description="mean share of days (after creation) a room goes live"
    )
    live_hours: int = Field(3, ge=1, le=12, description="mean length of a live window, hours")


class DatasetConfig(_Section):
    """Where the raw interactions come from."""

    kind: Literal["synthetic", "movielens-100k", "movielens-csv", "ncf"] = "synthetic"
    name: str = Field("synthetic", pattern=r"^[A-Za-z0-9_.-]+$")
    # Input directory (path or URI) for the non-synthetic kinds; synthetic data is
    # generated under <data_root>/<name>/raw.
    path: str | None = None
    # ncf kind: the ml-100k directory whose u.user/u.item give profile features (optional).
    side_path: str | None = None
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _path_required(self) -> DatasetConfig:
        if self.kind != "synthetic" and not self.path:
            raise ValueError(f"dataset.path is required when dataset.kind is {self.kind!r}")
        return self


class PathsConfig(_Section):
    """Roots of everything the pipeline writes; local paths or URIs (file://, hdfs://, s3a://)."""

    data_root: str = "data"
    model_repository: str = "models"


class SparkConfig(_Section):
    master: str = "local[*]"
    app_name: str = "peppercorn"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(8, gt=0)
    ui: bool = False
    conf: dict[str, str] = Field(default_factory=dict)


class LabelConfig(_Section):
    """Which interactions count as implicit positives."""

    kind: Literal["any", "rating", "watch"] = "any"
    rating_threshold: float = 4.0
    watch_seconds: float = 30.0


class FeaturesConfig(_Section):
    windows_days: list[int] = Field(default_factory=lambda: [7, 30])
    min_frequency: int = Field(1, ge=1)
    label: LabelConfig = LabelConfig()
    eval_negatives: int = Field(99, ge=1)
    seed: int = 2017
    # Items kept (the newest) of each user's history (`features/history/`): the width L of
    # the history input of the models that read one (fism, seqfism) and of a version's
    # exported history; seqfism's window must fit in it.
    history_length: int = Field(50, ge=1)


class ModelConfig(_Section):
    name: str = "neumf"
    params: dict[str, Any] = Field(default_factory=dict)


class DistributedConfig(_Section):
    workers: int = Field(1, ge=1)
    sync_every: int = Field(1, ge=1)


class TrainingConfig(_Section):
    # lazy_adam: tf.contrib.opt.LazyAdamOptimizer (embedding rows move only when looked up);
    # adam: exactly TF-1's AdamOptimizer (every row's moments decay every step).
    optimizer: Literal["sgd", "momentum", "adagrad", "adam", "lazy_adam", "rmsprop", "ftrl"] = (
        "lazy_adam"
    )
    learning_rate: float = Field(0.001, gt=0)
    batch_size: int = Field(256, gt=0)
    epochs: int = Field(20, gt=0)
    negatives: int = Field(4, ge=1)
    l2: float = Field(0.0, ge=0)
    seed: int = 0
    early_stopping_patience: int = Field(3, ge=1)
    memory_budget_mb: int = Field(1024, gt=0)
    device: Literal["cpu", "gpu"] = "cpu"
    distributed: DistributedConfig = DistributedConfig()
    # After early stopping picks the best epoch count on validation, retrain from scratch on
    # train + validation positives for that many epochs and export that model.
    refit: bool = False
    # Items negative sampling never draws for a user: "train" = the positives being trained
    # on (held-out validation/test items stay possible negatives, so evaluation does not leak
    # into training); "seen" = every split's interactions (data-contracts §3 `seen/`).
    negatives_exclude: Literal["train", "seen"] = "train"
    # The validation figure early stopping follows: the sampled protocol's (the held-out item
    # against its sampled negatives) or the full-catalogue ranking's (training/evaluation.py).
    early_stopping_metric: Literal[
        "ndcg@10", "hr@10", "full_ndcg@10", "full_recall@10", "full_ndcg@50", "full_recall@50"
    ] = "ndcg@10"
    # Users the full-catalogue evaluation ranks every item for (a seeded sample when the split
    # has more; all of them on MovieLens); 0 leaves that evaluation out.
    full_eval_users: int = Field(20_000, ge=0)
    # Off a terminal (cron, CI, a redirected log) a long epoch reports one progress line this
    # often instead of a redrawn bar (training/progress.py).
    progress_interval_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _full_stopping_needs_full_evaluation(self) -> TrainingConfig:
        if self.early_stopping_metric.startswith("full_"):
            if self.full_eval_users == 0:
                raise ValueError(
                    f"early_stopping_metric {self.early_stopping_metric!r} needs "
                    "full_eval_users > 0"
                )
            if self.distributed.workers > 1:
                # Each task holds only its users' positives, so none can rank for all users.
                raise ValueError(
                    f"early_stopping_metric {self.early_stopping_metric!r}: distributed "
                    "training early-stops on the sampled metrics only (ndcg@10, hr@10)"
                )
        return self


class ServedModelConfig(_Section):
    policy: Literal["latest", "all", "specific"] = "latest"
    latest: int = Field(1, ge=1)
    versions: list[int] = Field(default_factory=list)
    labels: dict[str, int] = Field(default_factory=dict)


class ArmConfig(_Section):
    """One arm: `model` (None: the experiment's model) at `version` or `label` (neither: its
    latest version), given `weight` relative to the other arms."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    # Finite: an infinite weight would make every share NaN.
    weight: float = Field(gt=0, allow_inf_nan=False)
    model: str | None = Field(None, min_length=1)
    version: int | None = Field(None, ge=1)
    label: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _version_or_label(self) -> ArmConfig:
        if self.version is not None and self.label is not None:
            raise ValueError(f"arm {self.name!r}: set version or label, not both")
        return self


class ExperimentConfig(_Section):
    """The arms one model's traffic is split between, on `endpoints`; `salt` keys the
    assignment (change it to start a new experiment on fresh buckets)."""

    salt: str = ""
    arms: list[ArmConfig] = Field(min_length=1)
    endpoints: list[Literal["predict", "recommend"]] = Field(
        default_factory=lambda: ["predict", "recommend"]
    )

    @model_validator(mode="after")
    def _unique_arms(self) -> ExperimentConfig:
        seen: set[str] = set()
        for arm in self.arms:
            if arm.name in seen:
                raise ValueError(f"duplicate arm name {arm.name!r}")
            seen.add(arm.name)
        if not math.isfinite(sum(a.weight for a in self.arms)):
            raise ValueError("the arms' weights sum to infinity")
        return self


class RecommendConfig(_Section):
    """`/recommend` as a chain (serving.chain): retrieve `candidates` items with the
    `retrieval` model's ANN index, leave out seen and `blocklist` items, rank them with
    `ranking` (None: the requested or default model), keep the top k. With no `retrieval`
    model, or while none is loaded, the ranker scores the whole catalogue."""

    retrieval: str | None = Field(None, min_length=1)
    ranking: str | None = Field(None, min_length=1)
    candidates: int = Field(200, ge=1, le=10_000)
    blocklist: list[str] = Field(default_factory=list)


class ServingConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8501, gt=0, lt=65536)
    poll_interval_s: float = Field(2.0, gt=0)
    default_model: str | None = None
    models: dict[str, ServedModelConfig] = Field(default_factory=dict)
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_instances: int = Field(10_000, gt=0)
    batch_output: str | None = None
    # Requests scored at once; None: one per core the process may use.
    scoring_threads: int | None = Field(None, ge=1)
    # Slow clients (serving.connections): the request line and headers must arrive within
    # header_timeout_s, the body within body_timeout_s after them (else 408); an idle
    # keep-alive connection closes after keep_alive_s; a request on a connection beyond
    # max_connections is answered 503, and connections beyond twice that are closed at once.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)
    keep_alive_s: float = Field(5.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    recommend: RecommendConfig = RecommendConfig()
    # Traffic splits keyed by the model they apply to (serving.experiments).
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)
    # TF Serving labels follow the model registry's aliases of the same name (tracking's
    # registry; nothing when tracking is off): serving.registry_labels.
    labels_from_registry: bool = True


class OnlineStoreConfig(_Section):
    """The online store (peppercorn.online_store): users' recent events and rooms' live state,
    written by `POST /v1/events`, `POST /v1/items` and the streaming job, read by serving."""

    kind: Literal["sqlite", "redis"] = "sqlite"
    # SQLite: a file under the dataset root (`<data_root>/<dataset>/online/store.sqlite`)
    # unless a path is given.
    path: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field("pc", pattern=r"^[A-Za-z0-9_.:-]+$")
    # An event older than this (by its own timestamp) is dropped; so is a room's state not
    # updated for this long.
    ttl_s: float = Field(7 * 86400.0, gt=0)
    # How many of each user's newest events are kept (L); the history and seen filters read them.
    events_per_user: int = Field(200, ge=1, le=100_000)
    # An event stamped further than this in the future is refused (`future_timestamp`).
    max_skew_s: float = Field(300.0, ge=0)
    # Events accepted per POST /v1/events request.
    max_events: int = Field(1000, ge=1)
    # Seconds a store call may take before the request answers without it.
    timeout_s: float = Field(0.5, gt=0)


class BatchConfig(_Section):
    k: int = Field(10, gt=0)
    model: str | None = None
    candidates: str | None = None
    promotion_margin: float = Field(0.01, ge=0)
    # Where the top-K Parquet goes (partitioned by dt); None: <dataset root>/recommendations.
    output: str | None = None
    # Ship the model version to the executors as a Spark archive instead of reading it from
    # a path every executor can reach (needed on a cluster without shared storage).
    ship_model: bool = False
    # The daily run starts training from the serving version's weights when it is compatible.
    warm_start: bool = False


class TrackingConfig(_Section):
    """Experiment tracking and the model registry, in MLflow (`peppercorn.tracking`).

    `uri` None: `MLFLOW_TRACKING_URI` when set, else a SQLite store `mlflow.db` under a local
    data root (`.mlflow/mlflow.db` here when the data root is remote), so nothing has to be
    started. `PEPPERCORN_TRACKING=off` in the environment turns tracking off like `enabled`.
    """

    enabled: bool = True
    uri: str | None = Field(None, min_length=1)
    # None: the tracking URI (MLflow's default); the server reads its labels' aliases here.
    registry_uri: str | None = Field(None, min_length=1)
    # None: the dataset's name, so each dataset's runs are compared side by side.
    experiment: str | None = Field(None, min_length=1)
    # Where a new experiment keeps its artifacts; None: `mlartifacts/` beside a SQLite store
    # (a tracking server chooses its own).
    artifact_location: str | None = Field(None, min_length=1)
    # The registry alias the daily run's promotion gate moves to the version it promotes.
    promotion_alias: str = Field("stable", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Config(_Section):
    """The whole pipeline configuration, one section per stage."""

    dataset: DatasetConfig = DatasetConfig()
    paths: PathsConfig = PathsConfig()
    spark: SparkConfig = SparkConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    serving: ServingConfig = ServingConfig()
    batch: BatchConfig = BatchConfig()
    online_store: OnlineStoreConfig = OnlineStoreConfig()
    tracking: TrackingConfig = TrackingConfig()
    source: str | None = Field(None, exclude=True, description="file this config was read from")

    def dataset_root(self) -> str:
        """Root (path or URI) of everything derived from this config's dataset."""
        return join_uri(self.paths.data_root, self.dataset.name)

    def online_store_path(self) -> str:
        """The SQLite online store's file: the configured path, else one under the dataset root."""
        return self.online_store.path or join_uri(self.dataset_root(), "online", "store.sqlite")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, key and expectation."""


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto a local path or a URI without touching the filesystem."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling; see the README's config reference)"
    got = error.get("input")
    got_s = "" if isinstance(got, dict) else f", got {got!r}"
    return f"{key}: {error['msg'].lower()}{got_s}"


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read and validate a YAML config; `overrides` are dotted keys applied on top."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    for dotted, value in (overrides or {}).items():
        node = data
        *heads, last = dotted.split(".")
        for head in heads:
            node = node.setdefault(head, {})
        node[last] = value
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    cfg.source = str(path)
    return cfg
