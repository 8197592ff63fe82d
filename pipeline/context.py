"""What one run of the pipeline carries from stage to stage: the config, the options the user
gave, a SparkSession it may own, and each stage's result for the next one."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from peppercorn.config import Config
from peppercorn.fs import is_local
from peppercorn.model_repository import ExportedVersion, ModelRepository

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from peppercorn.tracking.runs import RunTracker
    from training.trainer import Trainer, TrainResult

__all__ = ["RunContext", "checkpoint_dir"]


def checkpoint_dir(cfg: Config) -> Path:
    """Where training keeps its per-epoch checkpoints: beside the dataset when its root is
    local, else in `.checkpoints/<dataset>/` here (checkpoints are written locally)."""
    root = cfg.dataset_root()
    if is_local(root):
        return (
            Path(root.removeprefix("file://").removeprefix("file:"))
            / "checkpoints"
            / (cfg.model.name)
        )
    return Path(".checkpoints") / cfg.dataset.name / cfg.model.name


@dataclass
class RunContext:
    """One run: `cfg` plus options; stages read what earlier stages left here."""

    cfg: Config
    progress: bool = True
    regenerate: bool = False  # raw: regenerate synthetic logs even when current
    resume: bool = False  # train: continue from the last checkpoint
    day: str | None = None  # batch: the output partition
    batch_version: int | None = None  # batch: score with this version (default: the latest)
    warm_from: ExportedVersion | None = None  # train: start from this version's weights
    serving: ExportedVersion | None = None  # daily: the version serving before this run
    decision: dict | None = None  # daily: the promotion gate's decision
    trainer: Trainer | None = None
    result: TrainResult | None = None
    exported: ExportedVersion | None = None
    source: str = "pipeline"  # who ran it, as tracked runs say: "pipeline train", "bench.train"
    tracker: RunTracker | None = None  # train: the tracked run, ended by close()
    _spark: Any = field(default=None, repr=False)
    _owns_spark: bool = field(default=False, repr=False)

    @property
    def spark(self) -> SparkSession:
        """The SparkSession of this run, created on first use; a session that was already
        active (a notebook's, a test's) is used and left running."""
        if self._spark is None:
            from pyspark.sql import SparkSession

            from peppercorn.spark import get_spark

            self._owns_spark = SparkSession.getActiveSession() is None
            self._spark = get_spark(self.cfg.spark, self.cfg.spark.app_name)
        return self._spark

    @cached_property
    def repository(self) -> ModelRepository:
        """The model repository of `paths.model_repository`."""
        return ModelRepository(self.cfg.paths.model_repository)

    def close(self, failed: bool = False) -> None:
        """End the tracked run (FAILED when `failed`) and stop the SparkSession if this run
        started it."""
        if self.tracker is not None:
            self.tracker.end(failed=failed)
            self.tracker = None
        if self._spark is not None and self._owns_spark:
            self._spark.stop()
        self._spark, self._owns_spark = None, False
