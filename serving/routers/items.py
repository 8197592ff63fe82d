"""`POST /v1/items`: rooms' states. A room can go offline (`"live": false`) and come back; a
room created after training comes with its content.

A content item (any field besides `item_id` and `live`: `category`, `tags`, ...) is checked
against the retrieval model's vocabularies and its item-tower vector is added to the live ANN
index without a rebuild (`serving.catalogue`), so `/recommend` can return it to users whose
taste matches and `/predict` can score it, without retraining; it is also appended to the raw
items log, so the next ETL knows the room. Every state goes to the online store, which the
chain reads to leave out rooms not live (this server at its next request, the others within
`refresh_s`) and from which a restarted server gets the created rooms back.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from contextlib import ExitStack
from typing import Any

from fastapi import APIRouter

from peppercorn.online_store import ItemState, StoreUnavailable
from peppercorn.retrieval import ContentError
from serving import errors
from serving.dependencies import Catalogue, Manager, Online, Scoring, ServerSettings
from serving.routers.web import retrieval_version
from serving.schemas import ErrorBody, ItemsBody, ItemsResponse

__all__ = ["router"]

router = APIRouter(tags=["web"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 413, 503)}


def _index(settings, manager, scoring, catalogue, records) -> tuple[str | None, int | None, int]:
    """Add content items to the retrieval version's live index: (model, version, indexed)."""
    if not records:
        return None, None, 0
    if settings.recommend.retrieval is None:
        raise errors.bad_argument(
            "no retrieval model is configured (serving.recommend.retrieval): new items are "
            "indexed by its item tower"
        )
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
        return retrieval.name, retrieval.version, indexed


@router.post("/v1/items", response_model=ItemsResponse, responses=_ERRORS)
def add_items(
    body: ItemsBody,
    settings: ServerSettings,
    manager: Manager,
    scoring: Scoring,
    catalogue: Catalogue,
    online: Online,
):
    """Record rooms' live state; index the content of rooms created after training."""
    if len(body.items) > settings.max_instances:
        raise errors.too_large("items", len(body.items), settings.max_instances)
    now = time.time()
    records, states = [], []
    for item in body.items:
        content = item.model_dump(exclude={"item_id", "live"}) or None
        if content is not None:
            records.append((str(item.item_id), content))
        states.append(ItemState(str(item.item_id), item.live, content, now))
    model, version, indexed = _index(settings, manager, scoring, catalogue, records)
    if records and online.items_log is not None:
        day = dt.datetime.fromtimestamp(now, dt.timezone.utc).date().isoformat()
        online.items_log.append(
            [json.dumps({"item_id": raw, **content, "created_at": day}) for raw, content in records]
        )
    try:
        online.set_items(states)
    except StoreUnavailable as exc:
        raise errors.ServingError(
            503, f"online store unavailable ({exc}): the states hold on this server only"
        ) from None
    return {
        "model": model or settings.recommend.retrieval or "",
        "version": version or 0,
        "received": len(states),
        "indexed": indexed,
        "offline": sum(not s.live for s in states),
    }
