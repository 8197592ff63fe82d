"""Shared fixtures: one local SparkSession for the whole test session (Spark's testing guide)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.s3_server import s3_server, s3_uri  # noqa: F401  (fixtures: a local S3 server)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# Tests train many small models: none of them is tracked (a store is 2-3 s to create) except
# where a test turns tracking on itself (tests/peppercorn/tracking).
os.environ["PEPPERCORN_TRACKING"] = "off"


@pytest.fixture(scope="session", autouse=True)
def no_store_in_the_working_tree():
    """No test may leave an MLflow store in the checkout: MLflow's default store (a client
    given no tracking URI) is `mlflow.db` in the working directory."""
    stray = [ROOT / "mlflow.db", ROOT / "mlruns"]
    before = {path for path in stray if path.exists()}
    yield
    made = [str(path) for path in stray if path.exists() and path not in before]
    assert not made, f"a test made an MLflow store in the checkout: {made}"


@pytest.fixture(scope="session")
def spark():
    """A small local SparkSession shared by every test: local[2], few partitions, UI off."""
    from peppercorn.config import SparkConfig
    from peppercorn.spark import get_spark

    session = get_spark(
        SparkConfig(master="local[2]", shuffle_partitions=2, driver_memory="1g", ui=False),
        app_name="peppercorn-tests",
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """`../shared/datasets`, or a skip naming why where it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"needs MovieLens under {SHARED_DATASETS} (absent on this checkout)")
    return SHARED_DATASETS
