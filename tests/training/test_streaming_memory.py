"""Streamed training's memory does not grow with the number of events (issue 15 item 4).

The same users and items at N and 4N training positives: one epoch's peak traced memory
(tracemalloc sees numpy's allocations) stays flat when the positives are streamed, and grows
with N when they are held in memory (so the test can fail).
"""

import tracemalloc

import numpy as np
import pytest

from peppercorn.config import TrainingConfig
from training.data import open_dataset
from training.data.positives import training_bytes_per_positive
from training.data.synthetic import write_synthetic_dataset
from training.trainer import Trainer

USERS, ITEMS = 2000, 400
# per_user positives, two of them held out: 10 and 40 training positives per user.
SIZES = {"N": 12, "4N": 42}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    out = {}
    for name, per_user in SIZES.items():
        root = tmp_path_factory.mktemp(f"mem-{name}")
        write_synthetic_dataset(
            root, users=USERS, items=ITEMS, per_user=per_user, eval_negatives=5,
            row_group_size=512,
        )  # fmt: skip
        out[name] = root
    return out


def _epoch_peak(root, memory_budget_mb: int, model: str, tmp_path) -> tuple[int, object]:
    """Peak traced bytes of building the trainer and training one epoch."""
    dataset = open_dataset(str(root))
    cfg = TrainingConfig(epochs=1, batch_size=2048, memory_budget_mb=memory_budget_mb, seed=0)
    tracemalloc.start()
    try:
        trainer = Trainer(dataset, cfg, model, {"factors": 8}, tmp_path, progress=False)
        loss, samples, _ = trainer.run_epoch(1, np.random.default_rng(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(loss) and samples == trainer.train.count * (1 + cfg.negatives)
    return peak, trainer


@pytest.mark.parametrize("model", ["gmf", "fism"])
def test_streamed_peak_is_flat_and_in_memory_peak_grows(roots, tmp_path, model):
    peaks = {}
    for name, root in roots.items():
        for mode, budget_mb in (("streamed", 1), ("memory", 1024)):
            peak, trainer = _epoch_peak(root, budget_mb, model, tmp_path / f"{name}-{mode}")
            assert trainer.train.streamed == (mode == "streamed")
            peaks[name, mode] = peak
    figures = {f"{n} {m}": f"{p / 2**20:.2f} MiB" for (n, m), p in peaks.items()}
    print(model, figures)  # shown with -s: the figures the closing note quotes
    assert peaks["4N", "streamed"] <= 1.3 * peaks["N", "streamed"], figures
    # Held in memory, four times the events cost clearly more: the measurement can see it.
    assert peaks["4N", "memory"] >= 1.5 * peaks["N", "memory"], figures
    # The budget counts what training a positive costs, so in memory it is an upper bound.
    count = 40 * USERS
    assert peaks["4N", "memory"] <= count * training_bytes_per_positive(4) + 8 * 2**20, figures
