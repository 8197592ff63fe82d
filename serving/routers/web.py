"""The "TF-Web" API for application servers: raw user and item ids in, scores or top-k out.

Unknown item ids are a client error (400 naming them): scoring a string the model never saw
would silently return the unknown-item embedding's score.  An unknown user is normal (a new
user): /predict scores with the model's unknown-user embedding (index 0) and says
`"user_known": false`; /recommend answers with the most popular items and `"fallback": true`.

Both handlers are plain `def`s: a full-catalogue /recommend runs in FastAPI's thread pool,
off the event loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from peppercorn.loaded_version import LoadedVersion, Vocab
from serving import errors
from serving.dependencies import Manager, Metrics, Precomputed, Scoring, ServerSettings
from serving.manager import ModelManager
from serving.precomputed import PrecomputedTopK
from serving.schemas import (
    ErrorBody,
    RecommendBody,
    RecommendResponse,
    ScoreBody,
    ScoreResponse,
)
from serving.settings import Settings

__all__ = ["router"]

router = APIRouter(tags=["web"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 404, 413, 503)}


def _model_name(settings: Settings, manager: ModelManager, requested: str | None) -> str:
    if requested is not None:
        return requested
    default = settings.default_model
    names = manager.model_names()
    if default is not None and default in names:
        return default
    if len(names) == 1:
        return names[0]
    if not names:
        raise errors.ServingError(503, "no model is served yet")
    raise errors.bad_argument(f"'model' is required: several models are served: {names}")


def _item_indices(vocab: Vocab, ids: list, field: str) -> np.ndarray:
    index = vocab.index
    idx = [index.get(str(raw), 0) for raw in ids]
    if 0 in idx:
        raise errors.unknown_ids(field, [raw for raw, i in zip(ids, idx, strict=True) if i == 0])
    return np.asarray(idx, dtype=np.int32)


def _check_count(settings: Settings, what: str, n: int) -> None:
    if n > settings.max_instances:
        raise errors.too_large(what, n, settings.max_instances)


@router.post("/predict", response_model=ScoreResponse, responses=_ERRORS)
def predict(
    body: ScoreBody, settings: ServerSettings, manager: Manager, metrics: Metrics, scoring: Scoring
):
    """Scores of `item_ids` (in request order) for `user_id`."""
    _check_count(settings, "item_ids", len(body.item_ids))
    name = _model_name(settings, manager, body.model)
    with scoring, manager.acquire(name) as served:
        items = _item_indices(served.items, body.item_ids, "item_ids")
        user = served.users.lookup(body.user_id)
        metrics.batch_size.labels("predict").observe(items.shape[0])
        scores = served.score(user, items)
        return JSONResponse(
            {
                "model": name,
                "version": served.version,
                "scores": scores.tolist(),
                "user_known": user != 0,
            }
        )


@router.post("/recommend", response_model=RecommendResponse, responses=_ERRORS)
def recommend(
    body: RecommendBody,
    settings: ServerSettings,
    manager: Manager,
    metrics: Metrics,
    precomputed: Precomputed,
    scoring: Scoring,
):
    """The top `k` items for `user_id`; the most popular items for an unknown user."""
    _check_count(settings, "k", body.k)
    if body.candidates is not None:
        _check_count(settings, "candidates", len(body.candidates))
    name = _model_name(settings, manager, body.model)
    with scoring, manager.acquire(name) as served:
        candidates = None
        if body.candidates is not None:
            candidates = _item_indices(served.items, body.candidates, "candidates")
        user = served.users.lookup(body.user_id)
        fallback = user == 0
        if fallback:
            idx, scores = served.popular(body.k, candidates)
        else:
            hit = _precomputed(precomputed, name, served, body)
            if hit is not None:
                return hit
            n = len(served.items) - 1 if candidates is None else candidates.shape[0]
            metrics.batch_size.labels("recommend").observe(n)
            idx, scores = served.recommend(user, body.k, body.exclude_seen, candidates)
        raw = served.items.raw
        items = [
            {"item_id": raw(i), "score": s}
            for i, s in zip(idx.tolist(), scores.tolist(), strict=True)
        ]
        return JSONResponse(
            {"model": name, "version": served.version, "items": items, "fallback": fallback}
        )


def _precomputed(
    store: PrecomputedTopK | None, name: str, served: LoadedVersion, body: RecommendBody
):
    """The batch top-K answer (header `X-Peppercorn-Source: batch`), or None to score online."""
    if store is None:
        return None
    user = str(body.user_id)
    hit = store.lookup(name, served.version, user, body.k, body.exclude_seen, body.candidates)
    if hit is None:
        return None
    vocab = served.items
    items = [{"item_id": vocab.raw(vocab.lookup(i)), "score": s} for i, s in zip(*hit, strict=True)]
    return JSONResponse(
        {"model": name, "version": served.version, "items": items, "fallback": False},
        headers={"X-Peppercorn-Source": "batch"},
    )
