"""Exporting a trained model as a new version in the model repository (data-contracts §4).

The graph is optimised for inference and handed, with what serving needs beside it
(vocabularies, feature spec, metrics, popular items, seen items, each user's history for a
model that reads one, the report), to
`ModelRepository.export`, which writes the version whole or not at all, wherever the
repository lives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from peppercorn.model_repository import ExportedVersion, ModelRepository
from peppercorn.version_assets import VersionContents
from training.data import FeatureDataset, SeenItems, UserHistory

__all__ = ["MAX_POPULAR_ITEMS", "export_model", "popular_items", "version_contents"]

MAX_POPULAR_ITEMS = 1000


def popular_items(item_counts: np.ndarray, limit: int = MAX_POPULAR_ITEMS) -> dict[str, list]:
    """Most popular items first (ties: smaller index first), skipping index 0 and unseen items."""
    counts = np.asarray(item_counts).copy()
    counts[0] = 0
    order = np.lexsort((np.arange(counts.size), -counts))
    order = order[counts[order] > 0][:limit]
    return {"item_idx": order.astype(int).tolist(), "count": counts[order].astype(int).tolist()}


def version_contents(
    dataset: FeatureDataset,
    seen: SeenItems,
    item_counts: np.ndarray,
    model: str,
    params: dict[str, Any],
    metrics: dict[str, Any],
    report_dir: Path | None,
    history: UserHistory | None = None,
) -> VersionContents:
    """What a version of `model` trained on `dataset` holds beside its graph.

    `history`: each user's newest items the model was trained with (its history input), for a
    model that reads one; serving feeds it to a client that sends user and item ids only.
    """
    popular = popular_items(item_counts)
    report = {}
    if report_dir is not None:
        report = {p.name: p.read_bytes() for p in sorted(report_dir.iterdir())
                  if p.suffix in (".md", ".png")}  # fmt: skip
    return VersionContents(
        vocabs=dict(dataset.vocabs),
        popular_idx=np.asarray(popular["item_idx"], np.int32),
        popular_count=np.asarray(popular["count"], np.int64),
        seen_indptr=seen.indptr,
        seen_indices=seen.indices,
        feature_spec={
            "features": dataset.features,
            "model": model,
            "params": params,
            "dataset": dataset.manifest.get("dataset"),
            "dataset_checksum": dataset.checksum,
            "n_users": dataset.n_users,
            "n_items": dataset.n_items,
            **({} if history is None else {"history_length": history.length}),
        },
        metrics=metrics,
        report=report,
        history_indptr=None if history is None else history.indptr,
        history_indices=None if history is None else history.indices,
    )


def export_model(
    result,
    dataset: FeatureDataset,
    seen: SeenItems,
    repository: ModelRepository | str | Path,
    model: str,
    report_dir: Path | None,
) -> ExportedVersion:
    """Optimise the best epoch's graph for inference and publish it as a new version."""
    from engine import Session
    from engine.passes import optimize_for_inference

    if not isinstance(repository, ModelRepository):
        repository = ModelRepository(str(repository))
    optimized = optimize_for_inference(result.session, [result.model.score], freeze=False)
    session = Session(optimized.graph)
    session.initialize_variables()
    inputs = {"user_idx": result.model.user_idx, "item_idx": result.model.item_idx}
    if result.model.history is not None:
        # The graph holds no history: the signature takes it (int32 [-1, L], newest first).
        inputs["history"] = result.model.history
    signatures = {
        "serving_default": {
            "inputs": {key: optimized.graph.get_node(node.name) for key, node in inputs.items()},
            "outputs": {"score": optimized.outputs[result.model.score.name]},
        }
    }
    params = {**result.model.params, "inputs": result.model.inputs}
    contents = version_contents(
        dataset, seen, result.item_counts, model, params, result.metrics, report_dir,
        result.model.latest,
    )  # fmt: skip
    return repository.export(model, session, signatures, contents)
