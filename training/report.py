"""The training report: a markdown page with per-epoch plots and a baseline comparison."""

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


def write_report(
    folder: Path,
    model: str,
    params: dict[str, Any],
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    baseline: dict[str, float],
) -> Path:
    """Write `report.md`, `loss.png` and `ranking.png` into `folder`; return the report path.

    `history` has one dict per epoch with `epoch`, `loss` and `val_hr@10` / `val_ndcg@10`;
    `metrics` are the exported test metrics and `baseline` the popularity model's.
    """
    folder.mkdir(parents=True, exist_ok=True)
    epochs = [int(h["epoch"]) for h in history]
    _plot(folder / "loss.png", epochs, {"training loss": [h["loss"] for h in history]}, "loss")
    _plot(
        folder / "ranking.png",
        epochs,
        {
            "validation HR@10": [h["val_hr@10"] for h in history],
            "validation NDCG@10": [h["val_ndcg@10"] for h in history],
        },
        "metric",
    )
    lines = [
        f"# Training report: {model}",
        "",
        f"Parameters: `{params}`",
        "",
        f"Best epoch {metrics.get('best_epoch')} of {metrics.get('epochs')} "
        f"(early stopping on validation NDCG@10); {metrics.get('train_seconds', 0):.1f} s, "
        f"{metrics.get('train_samples_per_sec', 0):.0f} samples/s.",
        "",
        "The exported weights were retrained from scratch on train + validation positives "
        "for the selected number of epochs (training.refit)."
        if metrics.get("refit")
        else "The exported weights are the best epoch's.",
        "",
        "## Test set against the popularity baseline",
        "",
        "| metric | model | most popular |",
        "|---|---|---|",
    ]
    for key in ("hr@10", "ndcg@10", "recall@10", "auc"):
        lines.append(f"| {key} | {_fmt(metrics.get(key))} | {_fmt(baseline.get(key))} |")
    lines += [
        f"| logloss | {_fmt(metrics.get('logloss'))} | n/a |",
        "",
        "## Per epoch",
        "",
        "| epoch | loss | val HR@10 | val NDCG@10 | seconds |",
        "|---|---|---|---|---|",
    ]
    for h in history:
        lines.append(
            f"| {int(h['epoch'])} | {h['loss']:.4f} | {h['val_hr@10']:.4f} | "
            f"{h['val_ndcg@10']:.4f} | {h.get('seconds', 0.0):.1f} |"
        )
    lines += ["", "![loss](loss.png)", "", "![ranking](ranking.png)", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
