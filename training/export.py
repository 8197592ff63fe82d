"""Exporting a trained model as a TF-Serving-style version directory (data-contracts §4).

The version directory is written by `engine.save`, which stages everything in a
temporary sibling directory and renames it into place, so a server polling the repository sees
either no version or a complete one. The assets (vocabularies, feature spec, metrics, popular
items, seen items, report) travel inside that same atomic save and are covered by its checksum.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from training.data import FeatureDataset, SeenItems

__all__ = [
    "MAX_POPULAR_ITEMS",
    "build_assets",
    "export_model",
    "export_version",
    "next_version",
    "popular_items",
]

MAX_POPULAR_ITEMS = 1000
_VERSION = re.compile(r"^[0-9]+$")


def next_version(model_dir: Path) -> int:
    """An integer above every existing version under `model_dir` (1 when there is none)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if _VERSION.match(p.name)]
    return max(versions, default=0) + 1


def popular_items(item_counts: np.ndarray, limit: int = MAX_POPULAR_ITEMS) -> dict[str, list]:
    """Most popular items first (ties: smaller index first), skipping index 0 and unseen items."""
    counts = np.asarray(item_counts).copy()
    counts[0] = 0
    order = np.lexsort((np.arange(counts.size), -counts))
    order = order[counts[order] > 0][:limit]
    return {"item_idx": order.astype(int).tolist(), "count": counts[order].astype(int).tolist()}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=False).encode()


def build_assets(
    dataset: FeatureDataset,
    seen: SeenItems,
    item_counts: np.ndarray,
    model: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    report_dir: Path | None,
) -> dict[str, bytes]:
    """The §4 `assets/` files, as relative path -> bytes."""
    assets: dict[str, bytes] = {}
    for name, vocab in dataset.vocabs.items():
        assets[f"vocab/{name}.json"] = _json_bytes(vocab)
    spec = {
        "features": dataset.features,
        "model": model,
        "params": params,
        "dataset": dataset.manifest.get("dataset"),
        "dataset_checksum": dataset.checksum,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
    }
    assets["feature_spec.json"] = _json_bytes(spec)
    assets["metrics.json"] = _json_bytes(metrics)
    assets["popular_items.json"] = _json_bytes(popular_items(item_counts))
    assets["seen.npz"] = _npz_bytes(
        {"indptr": seen.indptr.astype(np.int64), "indices": seen.indices.astype(np.int32)}
    )
    if report_dir is not None:
        for path in sorted(report_dir.iterdir()):
            if path.suffix in (".md", ".png"):
                assets[path.name] = path.read_bytes()
    return assets


def export_version(
    model_repository: Path,
    model: str,
    save_fn,
    attempts: int = 5,
) -> Path:
    """Save into `<model_repository>/<model>/<next version>/` with `save_fn(path)`.

    `save_fn` must refuse an existing target (the engine's `save` does), so two exports racing
    for the same number cannot overwrite each other: the loser retries with the next number.
    """
    model_dir = model_repository / model
    last_error: Exception | None = None
    for _ in range(attempts):
        target = model_dir / str(next_version(model_dir))
        try:
            return Path(save_fn(target))
        except Exception as exc:  # the engine's SavedGraphError for an existing target
            if not target.exists():
                raise
            last_error = exc
    raise RuntimeError(f"could not claim a new version under {model_dir}: {last_error}")


def export_model(
    result,
    dataset: FeatureDataset,
    seen: SeenItems,
    repository: Path,
    model: str,
    report_dir: Path | None,
) -> Path:
    """Optimise the best epoch's graph for inference and save it as a new version."""
    from engine import Session
    from engine.passes import optimize_for_inference
    from engine.saved import save

    optimized = optimize_for_inference(result.session, [result.model.score], freeze=False)
    session = Session(optimized.graph)
    session.initialize_variables()
    signatures = {
        "serving_default": {
            "inputs": {
                "user_idx": optimized.graph.get_node(result.model.user_idx.name),
                "item_idx": optimized.graph.get_node(result.model.item_idx.name),
            },
            "outputs": {"score": optimized.outputs[result.model.score.name]},
        }
    }
    params = {**result.model.params, "inputs": result.model.inputs}
    assets = build_assets(
        dataset, seen, result.item_counts, model, params, result.metrics, report_dir
    )
    return export_version(
        repository, model, lambda target: save(target, session, signatures, assets=assets)
    )
