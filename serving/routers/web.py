"""The "TF-Web" API for application servers: raw user and item ids in, scores or top-k out.

An item the model does not know is scored from its content (the request's `content`, or an
item posted to `/v1/items`) by the retrieval model (`serving.recommend.retrieval`) and
otherwise reported in `unknown_items`, never a 400 for the whole request: scoring a string
the model never saw as the unknown item would silently return a meaningless score. An
unknown user is normal (a new user): /predict scores with the model's unknown-user embedding
(index 0) and says `"user_known": false`; /recommend answers with the most popular items and
`"fallback": true`.

/recommend is the chain of `serving.chain` (retrieve -> filter -> rank -> top k) when a
retrieval model is configured and loaded, else the ranker scores the whole catalogue. With
`serving.experiments`, each request's user is routed to an arm (`serving.experiments`).

Both handlers are plain `def`s: scoring runs in FastAPI's thread pool, off the event loop.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from peppercorn.loaded_version import LoadedVersion
from peppercorn.online_features import OnlineUser, ranker_inputs, reads_history
from peppercorn.retrieval import ContentError
from serving import errors
from serving.chain import content_scores, recommend_chain
from serving.dependencies import (
    Catalogue,
    ExperimentSplit,
    Manager,
    Metrics,
    Online,
    Precomputed,
    Scoring,
    ServerSettings,
)
from serving.experiments import Experiments, Route
from serving.features import history_feature
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

__all__ = ["model_name", "retrieval_version", "router"]

router = APIRouter(tags=["web"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 404, 413, 503)}


def model_name(settings: Settings, manager: ModelManager, requested: str | None) -> str:
    """The model a request is for: the named one, else the default, else the only one."""
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


def _check_count(settings: Settings, what: str, n: int) -> None:
    if n > settings.max_instances:
        raise errors.too_large(what, n, settings.max_instances)


def retrieval_version(stack: ExitStack, settings: Settings, manager: ModelManager):
    """The configured retrieval model's latest version, held by `stack`; None when none is
    configured or none is loaded yet (the caller then scores the whole catalogue)."""
    name = settings.recommend.retrieval
    if name is None or name not in manager.model_names():
        return None
    try:
        served = stack.enter_context(manager.acquire(name))
    except errors.ServingError:  # loading, refused or unloaded: the one-stage answer
        return None
    return served if served.retrieval is not None else None


@contextmanager
def _observed(experiments: Experiments, route: Route | None, endpoint: str):
    # Per-arm request counts and latencies, errors included.
    start, code = time.perf_counter(), 200
    try:
        yield
    except errors.ServingError as exc:
        code = exc.status_code
        raise
    except Exception:
        code = 500
        raise
    finally:
        if route is not None:
            experiments.observe(route, endpoint, code, time.perf_counter() - start)


def _acquire(manager: ModelManager, name: str, route: Route | None):
    if route is None:
        return manager.acquire(name)
    return manager.acquire(route.model, route.version, route.label)


def _content_of(raw, body_content: dict | None, catalogue) -> dict | None:
    if body_content and str(raw) in body_content:
        return body_content[str(raw)]
    return catalogue.content(str(raw))


def _score_unknown(retrieval, user_id, raws: list, body_content, catalogue) -> dict:
    """raw id -> the retrieval model's score, for the unknown items whose content is known."""
    if retrieval is None or not raws:
        return {}
    described = [(r, c) for r in raws if (c := _content_of(r, body_content, catalogue))]
    if not described:
        return {}
    try:
        content = retrieval.retrieval.content_matrix(retrieval.vocabs, described)
    except ContentError as exc:
        raise errors.bad_argument(str(exc)) from None
    scores = content_scores(retrieval, user_id, content)
    return {str(r): float(s) for (r, _), s in zip(described, scores, strict=True)}


def _split(served: LoadedVersion, ids: list) -> tuple[np.ndarray, list]:
    idx = np.asarray([served.items.lookup(raw) for raw in ids], np.int32)
    return idx, [raw for raw, i in zip(ids, idx.tolist(), strict=True) if i == 0]


@router.post("/predict", response_model=ScoreResponse, responses=_ERRORS)
def predict(
    body: ScoreBody,
    settings: ServerSettings,
    manager: Manager,
    metrics: Metrics,
    scoring: Scoring,
    experiments: ExperimentSplit,
    catalogue: Catalogue,
    online: Online,
):
    """Scores of `item_ids` (in request order) for `user_id`; null for an unknown item.

    A model reading a history gets `features.history` when given, else the user's history
    from the online store's events over the exported one."""
    _check_count(settings, "item_ids", len(body.item_ids))
    name = model_name(settings, manager, body.model)
    route = experiments.route(name, "predict", body.user_id, body.arm)
    with _observed(experiments, route, "predict"), scoring, ExitStack() as stack:
        served = stack.enter_context(_acquire(manager, name, route))
        items, unknown = _split(served, body.item_ids)
        user = served.users.lookup(body.user_id)
        metrics.batch_size.labels("predict").observe(items.shape[0])
        scores: list[float | None] = [None] * items.size
        known = np.flatnonzero(items)
        history = history_feature(served, body.features)
        if history is None and served.history_length:
            _, history = ranker_inputs(served, user, online.user(body.user_id), False)
        if known.size:
            got = served.score(user, items[known], history).tolist()
            for pos, s in zip(known, got, strict=True):
                scores[pos] = s
        if unknown:
            retrieval = retrieval_version(stack, settings, manager)
            catalogue.absorb(online.created())
            by_content = _score_unknown(retrieval, body.user_id, unknown, body.content, catalogue)
            for pos in np.flatnonzero(items == 0).tolist():
                scores[pos] = by_content.get(str(body.item_ids[pos]))
            unknown = [raw for raw in unknown if str(raw) not in by_content]
        out = {
            "model": route.model if route else name,
            "version": served.version,
            "scores": scores,
            "user_known": user != 0,
            "unknown_items": unknown,
        }
        if route is not None:
            out["arm"] = route.arm
        return JSONResponse(out)


@router.post("/recommend", response_model=RecommendResponse, responses=_ERRORS)
def recommend(
    body: RecommendBody,
    settings: ServerSettings,
    manager: Manager,
    metrics: Metrics,
    precomputed: Precomputed,
    scoring: Scoring,
    experiments: ExperimentSplit,
    catalogue: Catalogue,
    online: Online,
):
    """The top `k` items for `user_id`; the most popular items for an unknown user. The
    online store's events (history, seen) and rooms not live apply to every path."""
    _check_count(settings, "k", body.k)
    if body.candidates is not None:
        _check_count(settings, "candidates", len(body.candidates))
    name = model_name(settings, manager, body.model or settings.recommend.ranking)
    route = experiments.route(name, "recommend", body.user_id, body.arm)
    with _observed(experiments, route, "recommend"), scoring, ExitStack() as stack:
        served = stack.enter_context(_acquire(manager, name, route))
        retrieval = retrieval_version(stack, settings, manager)
        out = {"model": route.model if route else name, "version": served.version}
        if route is not None:
            out["arm"] = route.arm
        user = served.users.lookup(body.user_id)
        state = online.user(body.user_id)
        if retrieval is not None:
            catalogue.absorb(online.created())
        if body.candidates is not None:
            out.update(_over_candidates(served, retrieval, body, user, catalogue, metrics, state))
        elif retrieval is not None and (
            user or retrieval.users.lookup(body.user_id) or reads_history(retrieval, state.events)
        ):  # a new user with events in the store is recommended from them
            out.update(_two_stage(served, retrieval, body, settings, catalogue, metrics, state))
        elif user == 0:
            out.update(_popular(served, body.k, None, state))
        else:
            # Batch answers know nothing of the store: only for a user it says nothing about.
            fresh = bool(state.events or state.offline)
            hit = None if fresh else _precomputed(precomputed, out["model"], served, body)
            if hit is not None:
                return hit
            metrics.batch_size.labels("recommend").observe(len(served.items) - 1)
            excluded, history = ranker_inputs(served, user, state, body.exclude_seen)
            idx, scores = served.recommend(user, body.k, body.exclude_seen, excluded=excluded,
                                           history=history)  # fmt: skip
            out.update(items=_items(served, idx, scores), fallback=False)
        return JSONResponse(out)


def _items(served: LoadedVersion, idx: np.ndarray, scores: np.ndarray) -> list[dict]:
    raw = served.items.raw
    return [
        {"item_id": raw(i), "score": s} for i, s in zip(idx.tolist(), scores.tolist(), strict=True)
    ]


def _popular(served: LoadedVersion, k: int, candidates, state: OnlineUser) -> dict:
    idx, scores = served.popular(k + len(state.offline), candidates)
    live = ~np.isin(idx, ranker_inputs(served, 0, OnlineUser(offline=state.offline), False)[0])
    return {"items": _items(served, idx[live][:k], scores[live][:k]), "fallback": True}


def _two_stage(served, retrieval, body, settings, catalogue, metrics, state) -> dict:
    catalogue.sync(retrieval)
    chain = settings.recommend
    answer = recommend_chain(
        retrieval, served, body.user_id, body.k, chain.candidates, body.exclude_seen,
        chain.blocklist, state,
    )  # fmt: skip
    for stage, seconds in answer.timings.items():
        metrics.stage_latency.labels(stage).observe(seconds)
    metrics.batch_size.labels("recommend").observe(answer.ranked)
    out = {
        "items": [{"item_id": raw, "score": s} for raw, s in answer.items],
        "fallback": False,
        "retrieval": {"model": retrieval.name, "version": retrieval.version},
    }
    if body.debug:
        timings = {stage: round(s * 1000, 3) for stage, s in answer.timings.items()}
        out["debug"] = {
            "timings_ms": timings,
            "retrieved": answer.retrieved,
            "ranked": answer.ranked,
            "candidates": chain.candidates,
        }
    return out


def _over_candidates(served, retrieval, body, user, catalogue, metrics, state) -> dict:
    # The client's own candidate pool: no retrieval; unknown items by content, or reported.
    start = time.perf_counter()
    idx, unknown = _split(served, body.candidates)
    known = idx[idx > 0]
    unknown = [raw for raw in unknown if str(raw) not in state.offline]
    if user == 0:
        out = _popular(served, body.k, known, state)
        out["unknown_items"] = unknown
        return out
    metrics.batch_size.labels("recommend").observe(len(body.candidates))
    excluded, history = ranker_inputs(served, user, state, body.exclude_seen)
    top, scores = served.recommend(user, body.k, body.exclude_seen, known, excluded=excluded,
                                   history=history)  # fmt: skip
    ranked = [(served.items.raw(i), s) for i, s in zip(top.tolist(), scores.tolist(), strict=True)]
    by_content = _score_unknown(retrieval, body.user_id, unknown, body.content, catalogue)
    ranked += [(raw, by_content[str(raw)]) for raw in unknown if str(raw) in by_content]
    ranked.sort(key=lambda pair: -pair[1])  # stable: ties keep the ranker's order first
    out = {
        "items": [{"item_id": raw, "score": s} for raw, s in ranked[: body.k]],
        "fallback": False,
        "unknown_items": [raw for raw in unknown if str(raw) not in by_content],
    }
    if body.debug:
        out["debug"] = {"timings_ms": {"rank": round((time.perf_counter() - start) * 1000, 3)}}
    return out


def _precomputed(store: PrecomputedTopK | None, name: str, served: LoadedVersion, body):
    """The batch top-K answer (header `X-Peppercorn-Source: batch`), or None to score online."""
    if store is None:
        return None
    user = str(body.user_id)
    hit = store.lookup(name, served.version, user, body.k, body.exclude_seen, None)
    if hit is None:
        return None
    vocab = served.items
    items = [{"item_id": vocab.raw(vocab.lookup(i)), "score": s} for i, s in zip(*hit, strict=True)]
    return JSONResponse(
        {"model": name, "version": served.version, "items": items, "fallback": False},
        headers={"X-Peppercorn-Source": "batch"},
    )
