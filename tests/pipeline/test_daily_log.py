"""Logs written outside a terminal: `python -m pipeline daily` and `python -m pipeline train`
run as cron runs them, stdout and stderr into one file, and that file holds plain lines (no
carriage return from a redrawn progress bar) with one line per trained epoch."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline.test_daily import DAY, _config, _features

REPO = Path(__file__).resolve().parents[2]
# 40 users x 8 training positives x (1 + 4 negatives) at 64 a batch: 25 steps an epoch.
TRAINING = {"epochs": 3, "learning_rate": 0.02, "batch_size": 64, "seed": 1}
EPOCH_LINE = re.compile(r"^epoch (\d+): loss \d\.\d{4}  val HR@10 \d\.\d{4}  .* ex/s$")
TIMED_LINE = re.compile(r"^epoch (\d+): [\d,]+/1,600 ex \(\d+%\), loss \d\.\d{4}, [\d,]+ ex/s, ")


def _run_logged(args: list[str], log: Path, tracking: bool) -> tuple[int, bytes]:
    """Run `python -m pipeline ARGS` with stdout and stderr appended to `log`, as
    `make daily >> log 2>&1` under cron; (exit code, the log's bytes)."""
    env = dict(os.environ)
    if tracking:  # as in production: the run is tracked (an MLflow store under the data root)
        env.pop("PEPPERCORN_TRACKING", None)
    with log.open("wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=240,
        ).returncode  # fmt: skip
    return code, log.read_bytes()


def _epoch_lines(text: str) -> list[int]:
    return [int(m[1]) for m in map(EPOCH_LINE.match, text.splitlines()) if m]


@pytest.fixture(scope="module")
def daily_log(tmp_path_factory) -> tuple[int, bytes]:
    root = _features(tmp_path_factory.mktemp("daily-log"))
    config = _config(root, TRAINING)
    args = ["daily", "--config", str(config), "--dt", DAY, "--from-step", "train"]
    return _run_logged(args, root / "daily.log", tracking=True)


@pytest.fixture(scope="module")
def train_log(tmp_path_factory) -> tuple[int, bytes]:
    root = _features(tmp_path_factory.mktemp("train-log"))
    # A progress line every millisecond: each ~20 ms epoch writes some in the log.
    config = _config(root, {**TRAINING, "progress_interval_s": 0.001})
    return _run_logged(["train", "--config", str(config)], root / "train.log", tracking=False)


@pytest.mark.slow
def test_daily_log_has_no_carriage_return(daily_log):
    code, log = daily_log
    assert code == 0, log.decode(errors="replace")
    assert b"\r" not in log
    text = log.decode()
    assert f"daily dt={DAY}: succeeded" in text


@pytest.mark.slow
def test_daily_log_has_one_line_per_epoch(daily_log):
    code, log = daily_log
    assert code == 0, log.decode(errors="replace")
    assert _epoch_lines(log.decode()) == [1, 2, 3], log.decode()


def test_train_log_has_plain_progress_and_epoch_lines(train_log):
    code, log = train_log
    assert code == 0, log.decode(errors="replace")
    assert b"\r" not in log
    text = log.decode()
    assert _epoch_lines(text) == [1, 2, 3], text
    timed = [int(m[1]) for m in map(TIMED_LINE.match, text.splitlines()) if m]
    assert timed and set(timed) <= {1, 2, 3}, text
    assert timed == sorted(timed)  # each epoch's lines before the next epoch's
    assert re.search(r"^exported .*/gmf/1$", text, re.M)
    # The tqdm bar's text appears nowhere: no "ex/s]" rate field, no "|" bar frame.
    assert "ex/s]" not in text and "it/s" not in text
