"""Training progress off and on a terminal (training/progress.py): timed plain lines with the
bar's figures and no carriage return in a log; a tqdm bar on a TTY; the per-epoch summary line
either way."""

from __future__ import annotations

import functools
import io
import re

import pytest
from pydantic import ValidationError

import training.trainer as trainer_module
from peppercorn.config import TrainingConfig
from training.progress import BarProgress, LineProgress, epoch_progress, summary_line
from training.trainer import Trainer


class FakeClock:
    """Returns the queued times in order (a test's seconds, no sleeping)."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


class Ticker:
    """A clock that moves one second each time it is read."""

    def __init__(self) -> None:
        self.now = -1.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_come_once_per_interval_with_the_figures_and_no_carriage_return():
    log = io.StringIO()
    # Started at t=0; updates at t=1, 2, 2.3, 3, 9 (interval 2 s: lines due at 2.0, then 2 s
    # after the last line).
    clock = FakeClock(0.0, 1.0, 2.0, 2.3, 3.0, 9.0)
    report = epoch_progress("epoch 3", 260_000, enabled=True, interval_s=2.0, stream=log,
                            clock=clock)  # fmt: skip
    assert isinstance(report, LineProgress)
    # (examples, summed loss so far, training seconds so far)
    report.update(40_000, 14_000.0, 1.0)  # t=1: not yet
    assert log.getvalue() == ""
    # t=2: 100,000 done, mean loss 33,000 / 100,000, 100,000 ex in 2.5 s of training.
    report.update(60_000, 33_000.0, 2.5)
    # t=2.3: the next line is due at 4.0.
    report.update(20_000, 37_488.0, 120_000 / 51_234)
    # t=3: still before 4.0.
    report.update(10_000, 40_000.0, 3.0)
    # t=9: five seconds late gives one line, not two catch-up lines.
    report.update(130_000, 65_000.0, 6.5)
    report.close()
    assert log.getvalue().splitlines() == [
        "epoch 3: 100,000/260,000 ex (38%), loss 0.3300, 40,000 ex/s, 2.0 s",
        "epoch 3: 260,000/260,000 ex (100%), loss 0.2500, 40,000 ex/s, 9.0 s",
    ]
    assert "\r" not in log.getvalue()


def test_the_briefs_example_line():
    log = io.StringIO()
    report = LineProgress("epoch 3", 260_000, log, 2.0, FakeClock(0.0, 2.3))
    report.update(120_000, 0.3124 * 120_000, 120_000 / 51_234)
    assert log.getvalue() == "epoch 3: 120,000/260,000 ex (46%), loss 0.3124, 51,234 ex/s, 2.3 s\n"


def test_a_short_epoch_writes_no_line_and_a_disabled_one_nothing():
    log = io.StringIO()
    short = epoch_progress("epoch 1", 100, enabled=True, interval_s=30.0, stream=log,
                           clock=FakeClock(0.0, 0.1, 0.2))  # fmt: skip
    short.update(50, 30.0, 0.1)
    short.update(50, 55.0, 0.2)
    short.close()
    quiet = epoch_progress("epoch 1", 100, enabled=False, interval_s=1.0, stream=Terminal())
    quiet.update(100, 50.0, 0.1)
    quiet.close()
    assert log.getvalue() == ""


def test_a_terminal_gets_a_redrawn_bar():
    tty = Terminal()
    report = epoch_progress("refit epoch 2", 1000, enabled=True, interval_s=30.0, stream=tty)
    assert isinstance(report, BarProgress)
    report.update(500, 200.0, 0.5)
    report.close()
    drawn = tty.getvalue()
    assert "\r" in drawn and "refit epoch 2" in drawn and "/1000" in drawn


def test_summary_line_is_one_plain_line():
    out = io.StringIO()
    summary_line("epoch 1: loss 0.5000", out)
    assert out.getvalue() == "epoch 1: loss 0.5000\n"


def test_interval_must_be_positive():
    assert TrainingConfig().progress_interval_s == 30.0
    with pytest.raises(ValidationError, match="progress_interval_s"):
        TrainingConfig(progress_interval_s=0)
    with pytest.raises(ValueError, match="interval_s must be > 0"):
        LineProgress("epoch 1", 10, io.StringIO(), 0.0)


def _train(dataset, tmp_path, epochs: int, refit: bool = False) -> None:
    cfg = TrainingConfig(epochs=epochs, batch_size=64, learning_rate=0.02, seed=1, refit=refit,
                         early_stopping_patience=10, full_eval_users=0,
                         progress_interval_s=10.0)  # fmt: skip
    Trainer(dataset, cfg, "gmf", {"factors": 4}, tmp_path, progress=True).fit()


def test_trainer_off_a_terminal_writes_timed_lines_and_epoch_lines(
    dataset, tmp_path, monkeypatch, capsys
):
    # The real reporter on a clock that moves 1 s per read: the epoch starts at 0 and each of
    # its 25 batches (40 users x 8 training positives x (1 + 4 negatives) = 1,600 examples,
    # 64 a batch) reads the clock once, so lines come after batches 10 and 20.
    ticking = functools.partial(trainer_module.epoch_progress, clock=Ticker())
    monkeypatch.setattr(trainer_module, "epoch_progress", ticking)
    _train(dataset, tmp_path, epochs=1, refit=True)
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    timed = re.compile(
        r"^(refit epoch|epoch) (\d): (\d[\d,]*)/(\d[\d,]*) ex \((\d+)%\), loss (\d\.\d{4}), "
        r"(\d[\d,]*) ex/s, (\d+\.\d) s$"
    )
    found = [timed.match(line) for line in captured.err.splitlines()]
    assert all(found), captured.err
    shown = [(m[1], m[2], m[3], m[4], m[5]) for m in found]
    refit_total = "1,800"  # refit adds each user's validation positive: 40 x 9 x 5
    assert shown == [
        ("epoch", "1", "640", "1,600", "40"), ("epoch", "1", "1,280", "1,600", "80"),
        ("refit epoch", "1", "640", refit_total, "36"),
        ("refit epoch", "1", "1,280", refit_total, "71"),
    ]  # fmt: skip
    assert [m[8] for m in found] == ["10.0", "20.0"] * 2
    assert all(0 < float(m[6]) < 1 and int(m[7].replace(",", "")) > 0 for m in found)
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "refit epoch 1/1"]
    assert re.fullmatch(r"epoch 1: loss \d\.\d{4}  val HR@10 .* ex/s", lines[0])


def test_trainer_on_a_terminal_draws_a_bar(dataset, tmp_path, monkeypatch, capsys):
    tty = Terminal()
    monkeypatch.setattr("sys.stderr", tty)
    _train(dataset, tmp_path, epochs=1)
    assert "\r" in tty.getvalue() and "epoch 1" in tty.getvalue()
    assert " ex (" not in tty.getvalue()  # no timed line beside the bar
    out = capsys.readouterr().out
    assert out.startswith("epoch 1: loss ") and "\r" not in out
