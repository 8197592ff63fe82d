"""`POST /v1/items`: items created after training (a room that just went live), with content.

Each item's content (`category`, `tags`) is checked against the retrieval model's
vocabularies and its item-tower vector is added to the live ANN index without a rebuild
(`serving.catalogue`), so `/recommend` can return the item to users whose taste matches it
and `/predict` can score it, without retraining. Needs `serving.recommend.retrieval`.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from fastapi import APIRouter

from peppercorn.retrieval import ContentError
from serving import errors
from serving.dependencies import Catalogue, Manager, Scoring, ServerSettings
from serving.routers.web import retrieval_version
from serving.schemas import ErrorBody, ItemsBody, ItemsResponse

__all__ = ["router"]

router = APIRouter(tags=["web"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 413, 503)}


@router.post("/v1/items", response_model=ItemsResponse, responses=_ERRORS)
def add_items(
    body: ItemsBody,
    settings: ServerSettings,
    manager: Manager,
    scoring: Scoring,
    catalogue: Catalogue,
):
    """Add items with their content to the retrieval model's live index."""
    if len(body.items) > settings.max_instances:
        raise errors.too_large("items", len(body.items), settings.max_instances)
    if settings.recommend.retrieval is None:
        raise errors.bad_argument(
            "no retrieval model is configured (serving.recommend.retrieval): new items are "
            "indexed by its item tower"
        )
    records = []
    for item in body.items:
        content = item.model_dump(exclude={"item_id"})
        records.append((str(item.item_id), content))
    with scoring, ExitStack() as stack:
        retrieval = retrieval_version(stack, settings, manager)
        if retrieval is None:
            raise errors.ServingError(
                503, f"retrieval model {settings.recommend.retrieval} has no version loaded"
            )
        try:
            indexed = catalogue.put(retrieval, records)
        except ContentError as exc:
            raise errors.bad_argument(str(exc)) from None
        return {
            "model": retrieval.name,
            "version": retrieval.version,
            "received": len(records),
            "indexed": indexed,
        }
