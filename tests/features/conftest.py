"""Each input kind's clean fixture is run through the features stage once per test session."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from peppercorn.config import Config
from tests.features import cleandata

MAKERS = {
    "synthetic": cleandata.synthetic,
    "movielens-100k": cleandata.movielens_100k,
    "movielens-csv": cleandata.movielens_csv,
    "ncf": cleandata.ncf,
}
# Small enough that some users have fewer unseen items than asked for, large
# enough that others go through rejection sampling.
HISTORY_LENGTH = 3
EVAL_NEGATIVES = {"synthetic": 8, "movielens-100k": 4, "movielens-csv": 5, "ncf": 6}


@dataclass
class Built:
    cfg: Config
    clean: cleandata.Clean
    summary: dict
    root: Path  # the features folder

    def table(self, spark, name: str) -> pd.DataFrame:
        return spark.read.parquet(str(self.root / name)).toPandas()

    def manifest(self) -> dict:
        return json.loads((self.root / "manifest.json").read_text())

    def vocab(self, name: str) -> dict:
        return json.loads((self.root / "vocab" / f"{name}.json").read_text())


def config_for(kind: str, data_root: Path, **features) -> Config:
    return Config.model_validate(
        {
            "dataset": {"kind": kind, "name": f"fx-{kind}", "path": "unused-here"},
            "paths": {"data_root": str(data_root)},
            "features": {"eval_negatives": EVAL_NEGATIVES[kind], **features},
        }
    )


def build(spark, kind: str, data_root: Path) -> Built:
    from features import run

    # A short history cap, so the fixtures' users exceed it and the newest-kept rule is tested.
    cfg = config_for(kind, data_root, history_length=HISTORY_LENGTH)
    clean = MAKERS[kind]()
    cleandata.write_clean(spark, cfg.dataset_root(), clean)
    summary = run(cfg, spark)
    return Built(cfg, clean, summary, data_root / cfg.dataset.name / "features")


@pytest.fixture(scope="session")
def built(spark, tmp_path_factory):
    """kind -> Built, each kind run lazily on first use."""
    cache: dict[str, Built] = {}

    def get(kind: str) -> Built:
        if kind not in cache:
            cache[kind] = build(spark, kind, tmp_path_factory.mktemp(kind.replace("-", "_")))
        return cache[kind]

    return get
