"""Metric names as MLflow stores them and as the pipeline writes them.

MLflow accepts letters, digits, `_ - . / :` and spaces in a metric name, not `@`; the
pipeline's figures are `hr@10`, `full_ndcg@50`. A tracked name is `<split>/<figure>` with
`@` spelt `_at_`: `test/hr_at_10`, `val/full_ndcg_at_10`, `train/loss`. The prefix groups
them in the UI's charts; `figure_name` turns one back.
"""

from __future__ import annotations

__all__ = ["figure_name", "metric_key"]


def metric_key(split: str, figure: str) -> str:
    """The tracked name of `figure` (e.g. `hr@10`) measured on `split` (e.g. `test`)."""
    return f"{split}/{figure.replace('@', '_at_')}"


def figure_name(key: str) -> tuple[str, str]:
    """(split, figure) of a tracked name: `test/hr_at_10` -> (`test`, `hr@10`)."""
    split, _, figure = key.partition("/")
    return split, figure.replace("_at_", "@")
