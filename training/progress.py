"""Training progress for people and for log files.

On a terminal an epoch shows a tqdm bar, redrawn in place. Anywhere else (cron, systemd, CI,
`make train > log`) redrawing writes carriage returns into the log, so an epoch reports one
plain line every `training.progress_interval_s` seconds instead, with the bar's figures, and
nothing per batch; a short epoch reports no line at all. Either way the per-epoch summary
(`summary_line`) is one plain, flushed line.

The choice is made on the stream the bar would draw on (stderr), when each epoch starts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Protocol

from tqdm import tqdm

__all__ = [
    "BarProgress",
    "EpochProgress",
    "LineProgress",
    "epoch_progress",
    "is_terminal",
    "summary_line",
]

# The bar's loss and ex/s figures are refreshed at most this often (a refresh redraws it).
_POSTFIX_SECONDS = 0.5


class EpochProgress(Protocol):
    """What the training loop tells about one epoch while it runs."""

    def update(self, examples: int, loss_sum: float, train_seconds: float) -> None:
        """`examples` more done; `loss_sum` is the epoch's summed example loss so far and
        `train_seconds` its time in training steps so far (the ex/s figure's time)."""

    def close(self) -> None:
        """The epoch is over."""


def is_terminal(stream: IO | None) -> bool:
    """Whether `stream` is an interactive terminal (a closed or odd stream is not)."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # closed, or a wrapper without a file behind it
        return False


class _Figures:
    """The running figures both reporters show: done, mean loss, train-time rate."""

    def __init__(self) -> None:
        self.done, self.loss_sum, self.train_seconds = 0, 0.0, 0.0

    def add(self, examples: int, loss_sum: float, train_seconds: float) -> None:
        self.done += examples
        self.loss_sum, self.train_seconds = loss_sum, train_seconds

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.done, 1)

    @property
    def rate(self) -> float:
        return self.done / max(self.train_seconds, 1e-9)


class BarProgress:
    """A tqdm bar on a terminal, cleared when the epoch ends."""

    def __init__(
        self, desc: str, total: int, stream: IO, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.figures, self.clock = _Figures(), clock
        self.bar = tqdm(
            total=total, desc=desc, unit="ex", file=stream, leave=False, mininterval=0.5
        )
        self._postfix_at = clock()

    def update(self, examples: int, loss_sum: float, train_seconds: float) -> None:
        """Advance the bar; the loss and ex/s shown are refreshed every half second."""
        self.figures.add(examples, loss_sum, train_seconds)
        self.bar.update(examples)
        now = self.clock()
        if now - self._postfix_at >= _POSTFIX_SECONDS:
            self._postfix_at = now
            f = self.figures
            self.bar.set_postfix(loss=f"{f.loss:.4f}", ex_s=f"{f.rate:.0f}")

    def close(self) -> None:
        """Clear the bar."""
        self.bar.close()


class LineProgress:
    """One plain line every `interval_s` seconds of an epoch, for logs (no carriage return)."""

    def __init__(
        self,
        desc: str,
        total: int,
        stream: IO,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"progress interval_s must be > 0, got {interval_s!r}")
        self.desc, self.total, self.stream = desc, total, stream
        self.interval_s, self.clock = interval_s, clock
        self.figures = _Figures()
        self.started = clock()
        self._next_line = self.started + interval_s

    def update(self, examples: int, loss_sum: float, train_seconds: float) -> None:
        """Count the examples; write a line when the next interval has been reached."""
        self.figures.add(examples, loss_sum, train_seconds)
        now = self.clock()
        if now < self._next_line:
            return
        # The next line is one interval after this one: a step longer than the interval
        # gives one line, not a burst of catch-up lines.
        self._next_line = now + self.interval_s
        self.stream.write(self.line(now - self.started) + "\n")
        self.stream.flush()

    def line(self, elapsed: float) -> str:
        """The progress line, e.g. `epoch 3: 120,000/260,000 ex (46%), loss 0.3124,
        51,234 ex/s, 2.3 s` (the seconds are the epoch's wall time so far)."""
        f = self.figures
        share = f"{f.done / self.total:.0%}" if self.total else "n/a"
        return (
            f"{self.desc}: {f.done:,}/{self.total:,} ex ({share}), loss {f.loss:.4f}, "
            f"{f.rate:,.0f} ex/s, {elapsed:.1f} s"
        )

    def close(self) -> None:
        """Nothing to clear: the lines stay in the log."""


class _Silent:
    def update(self, examples: int, loss_sum: float, train_seconds: float) -> None:
        pass

    def close(self) -> None:
        pass


def epoch_progress(
    desc: str,
    total: int,
    *,
    enabled: bool,
    interval_s: float,
    stream: IO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> EpochProgress:
    """The reporter for one epoch of `total` examples: nothing when not `enabled`, a bar when
    `stream` (default: stderr at this moment) is a terminal, else timed lines on it."""
    if not enabled:
        return _Silent()
    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        return BarProgress(desc, total, stream, clock)
    return LineProgress(desc, total, stream, interval_s, clock)


def summary_line(text: str, stream: IO | None = None) -> None:
    """Write one finished-epoch line to `stream` (default: stdout), flushed at once so that a
    log written through a pipe or file shows it when it happens. No bar is open then (each
    epoch's bar is cleared when it ends), so a plain write does not tear one."""
    stream = sys.stdout if stream is None else stream
    stream.write(text + "\n")
    stream.flush()
