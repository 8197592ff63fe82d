"""Spark features stage: vocabularies, user/item profiles and leave-one-out datasets.

`run(cfg, spark)` reads `<dataset_root>/clean/` and writes `<dataset_root>/features/`
(docs/data-contracts.md §3); `python -m features --config FILE` runs just this stage.
"""

from features.job import run
from features.source import FeaturesError

__all__ = ["FeaturesError", "run"]
