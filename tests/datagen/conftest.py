"""A small live-streaming platform (rooms created over the period, live windows), generated
once per test session and shared by the datagen tests that judge it."""

from __future__ import annotations

import pytest

import datagen.job as gen
from peppercorn.config import Config

# Several blocks even for small logs, so block seeding and partitioning are exercised; the
# same size as test_generate's `small_blocks`, so a re-run there reproduces these files.
SMALL_BLOCK_ROWS = 4096

PLATFORM = {
    "seed": 7,
    "users": 2_000,
    "items": 500,
    "events": 200_000,
    "days": 30,
    "rooms_at_start": 0.4,
    "live_share": 0.9,
    "live_days": 0.5,
    "live_hours": 3,
    "files": 3,
}


def platform_config(root, **synthetic) -> Config:
    """configs/platform.yaml's shape at 1/500 of its users and 1/200 of its rooms."""
    return Config.model_validate(
        {"paths": {"data_root": str(root)}, "dataset": {"synthetic": {**PLATFORM, **synthetic}}}
    )


@pytest.fixture(scope="session")
def platform_run(spark, tmp_path_factory):
    """(config, raw folder, summary) of the small platform's generated logs."""
    root = tmp_path_factory.mktemp("platform")
    cfg = platform_config(root)
    saved, gen.BLOCK_ROWS = gen.BLOCK_ROWS, SMALL_BLOCK_ROWS
    try:
        summary = gen.generate(cfg, spark)
    finally:
        gen.BLOCK_ROWS = saved
    return cfg, root / "synthetic" / "raw", summary
