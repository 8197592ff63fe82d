"""Exporting a trained model as a new version in the model repository (data-contracts §4).

The graph is optimised for inference and handed, with what serving needs beside it
(vocabularies, feature spec, metrics, popular items, seen items, each user's history for a
model that reads one, the report), to
`ModelRepository.export`, which writes the version whole or not at all, wherever the
repository lives.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from peppercorn.ann import AnnIndex
from peppercorn.loaded_version import (
    CONTENT_EMBEDDING,
    EMBEDDING_OUTPUT,
    ITEM_EMBEDDING,
    USER_EMBEDDING,
)
from peppercorn.model_repository import ExportedVersion, ModelRepository
from peppercorn.retrieval import RetrievalAssets
from peppercorn.version_assets import VersionContents
from training.data import FeatureDataset, SeenItems, UserHistory

__all__ = [
    "MAX_POPULAR_ITEMS",
    "export_model",
    "popular_items",
    "publish_model",
    "retrieval_assets",
    "version_contents",
]

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
            # The features stage's positive rule: serving builds a history from the online
            # store's events with it (peppercorn.online_features), as features did offline.
            "label": _label_rule(dataset.manifest),
            **({} if history is None else {"history_length": history.length}),
        },
        metrics=metrics,
        report=report,
        history_indptr=None if history is None else history.indptr,
        history_indices=None if history is None else history.indices,
    )


def _label_rule(manifest: dict) -> dict:
    label = (manifest.get("config") or {}).get("features", {}).get("label")
    return dict(label) if isinstance(label, dict) else {"kind": "any"}


def export_model(
    result,
    dataset: FeatureDataset,
    seen: SeenItems,
    repository: ModelRepository | str | Path,
    model: str,
    report_dir: Path | None,
) -> ExportedVersion:
    """Optimise the best epoch's graph for inference and publish it as a new version."""
    m = result.model
    params = {**m.params, "inputs": m.inputs}
    contents = version_contents(
        dataset, seen, result.item_counts, model, params, result.metrics, report_dir, m.latest,
    )  # fmt: skip
    return publish_model(repository, model, result.session, m, contents)


def publish_model(
    repository: ModelRepository | str | Path, name: str, session, m, contents: VersionContents
) -> ExportedVersion:
    """Publish the `ModelGraph` `m` with `session`'s weights and `contents` as a new version
    of `name`: its graph optimised for inference, its signatures (a retrieval model's
    embedding signatures too) and, for a retrieval model, its item vectors and ANN index."""
    from engine import Session
    from engine.passes import optimize_for_inference

    if not isinstance(repository, ModelRepository):
        repository = ModelRepository(str(repository))
    inputs = {"user_idx": m.user_idx, "item_idx": m.item_idx}
    if m.history is not None:
        # The graph holds no history: the signature takes it (int32 [-1, L], newest first).
        inputs["history"] = m.history
    wanted = {"serving_default": (inputs, {"score": m.score})}
    if m.towers is not None:
        t, user_inputs = m.towers, {k: v for k, v in inputs.items() if k != "item_idx"}
        wanted[USER_EMBEDDING] = (user_inputs, {EMBEDDING_OUTPUT: t.user_embedding})
        wanted[ITEM_EMBEDDING] = ({"item_idx": m.item_idx}, {EMBEDDING_OUTPUT: t.item_embedding})
        wanted[CONTENT_EMBEDDING] = (
            {"content": t.content},
            {EMBEDDING_OUTPUT: t.content_embedding},
        )
    outputs = [node for _, outs in wanted.values() for node in outs.values()]
    optimized = optimize_for_inference(session, outputs, freeze=False)
    serving_session = Session(optimized.graph)
    serving_session.initialize_variables()
    signatures = {
        signature: {
            "inputs": {key: optimized.graph.get_node(node.name) for key, node in ins.items()},
            "outputs": {key: optimized.outputs[node.name] for key, node in outs.items()},
        }
        for signature, (ins, outs) in wanted.items()
    }
    if m.towers is not None:
        contents.retrieval = retrieval_assets(session, m)
    return repository.export(name, serving_session, signatures, contents)


def retrieval_assets(session, model) -> RetrievalAssets:
    """A two-tower model's item vectors (every item, through the item tower) and their index."""
    vectors = np.asarray(session.run(model.factors.item_vectors), np.float32)
    ids = np.arange(1, vectors.shape[0], dtype=np.int64)
    start = time.perf_counter()
    index = AnnIndex.build(vectors[1:], ids)
    meta = {
        "dim": int(vectors.shape[1]),
        "temperature": model.towers.temperature,
        "content": model.towers.content_spec,
        "index": {**index.describe(), "build_seconds": round(time.perf_counter() - start, 3)},
    }
    return RetrievalAssets(vectors, index.to_bytes(), meta)
