"""The training report: a markdown page with per-epoch plots and a baseline comparison.

It names the protocol of every figure: HR/NDCG@10, recall@10 and AUC rank the held-out item
against its sampled negatives (training/metrics.py); the `full_*` figures rank every item the
user did not train on (training/evaluation.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on training machines; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["write_report"]


def _plot(path: Path, epochs: list[int], series: dict[str, list[float]], ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in series.items():
        ax.plot(epochs, values, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _full_catalogue(metrics: dict[str, Any], baseline: dict[str, float]) -> list[str]:
    """The full-catalogue section's lines; none when the run left that evaluation out."""
    if "full_users" not in metrics:
        return []
    lines = [
        "## Test set ranked against the full catalogue",
        "",
        f"Every item the user did not train on (train + validation positives) is a candidate; "
        f"{metrics['full_users']} users, ties counted against the held-out item; "
        f"Recall@K = hits / held-out items, NDCG@K with binary relevance. "
        f"Scoring took {metrics.get('full_eval_seconds', 0.0):.1f} s.",
        "",
        "| metric | model | most popular |",
        "|---|---|---|",
    ]
    for k in (10, 50):
        for name in (f"full_recall@{k}", f"full_ndcg@{k}"):
            lines.append(f"| {name} | {_fmt(metrics.get(name))} | {_fmt(baseline.get(name))} |")
    return [*lines, ""]


def write_report(
    folder: Path,
    model: str,
    params: dict[str, Any],
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    baseline: dict[str, float],
) -> Path:
    """Write `report.md`, `loss.png` and `ranking.png` into `folder`; return the report path.

    `history` has one dict per epoch with `epoch`, `loss` and `val_hr@10` / `val_ndcg@10`
    (and `val_full_*` when early stopping followed a full-catalogue figure); `metrics` are the
    exported test metrics and `baseline` the popularity model's.
    """
    folder.mkdir(parents=True, exist_ok=True)
    epochs = [int(h["epoch"]) for h in history]
    stopping = metrics.get("early_stopping_metric", "ndcg@10")
    full_column = f"val_{stopping}" if stopping.startswith("full_") else None
    _plot(folder / "loss.png", epochs, {"training loss": [h["loss"] for h in history]}, "loss")
    series = {
        "validation HR@10 (sampled)": [h["val_hr@10"] for h in history],
        "validation NDCG@10 (sampled)": [h["val_ndcg@10"] for h in history],
    }
    if full_column:
        series[f"validation {stopping}"] = [h[full_column] for h in history]
    _plot(folder / "ranking.png", epochs, series, "metric")
    lines = [
        f"# Training report: {model}",
        "",
        f"Parameters: `{params}`",
        "",
        f"Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs')} "
        f"(early stopping on validation {stopping}); {metrics.get('train_seconds', 0):.1f} s, "
        f"{metrics.get('train_samples_per_sec', 0):.0f} samples/s.",
        "",
        "The exported weights were retrained from scratch on train + validation positives "
        "for the selected number of epochs (training.refit)."
        if metrics.get("refit")
        else "The exported weights are the best epoch's.",
        "",
        "## Test set against the popularity baseline",
        "",
        "Sampled protocol: each user's held-out item ranked against its sampled negatives "
        "(99 in the NCF protocol), ties counted against it.",
        "",
        "| metric | model | most popular |",
        "|---|---|---|",
    ]
    for key in ("hr@10", "ndcg@10", "recall@10", "auc"):
        lines.append(f"| {key} | {_fmt(metrics.get(key))} | {_fmt(baseline.get(key))} |")
    lines += [f"| logloss | {_fmt(metrics.get('logloss'))} | n/a |", ""]
    lines += _full_catalogue(metrics, baseline)
    extra = f" val {stopping} |" if full_column else ""
    lines += [
        "## Per epoch",
        "",
        f"| epoch | loss | val HR@10 | val NDCG@10 |{extra} seconds |",
        "|---|---|---|---|" + ("---|" if full_column else "") + "---|",
    ]
    for h in history:
        value = f" {h[full_column]:.4f} |" if full_column else ""
        lines.append(
            f"| {int(h['epoch'])} | {h['loss']:.4f} | {h['val_hr@10']:.4f} | "
            f"{h['val_ndcg@10']:.4f} |{value} {h.get('seconds', 0.0):.1f} |"
        )
    lines += ["", "![loss](loss.png)", "", "![ranking](ranking.png)", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
