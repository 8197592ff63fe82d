"""`POST /v1/events`: a batch of events in the raw log's format, into the online store.

Each event is checked by the ETL's own rules for a raw event (`peppercorn.event_rules`, the
same codes as the quarantine's) plus `future_timestamp` (stamped more than
`online_store.max_skew_s` ahead). The good events of a batch are kept whatever the bad ones
do: they are appended to the raw log under the data root first (so the next ETL, and the
streaming job, read exactly what serving accepted), then written to the store. A batch with
a bad event is answered 400 naming each bad event's field and rule, and how many were
accepted; a batch over `online_store.max_events` is refused whole (413).

The store's idempotence by `event_id` makes a client's retry, or the streaming job reading
the same events back from the raw log, change nothing.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from peppercorn.event_rules import event_csv_line, event_line, validate_event
from peppercorn.online_store import StoreUnavailable
from serving import errors
from serving.dependencies import Metrics, Online, ServerSettings
from serving.schemas import ErrorBody, EventsBody, EventsResponse

__all__ = ["router"]

router = APIRouter(tags=["events"])
_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (400, 413, 503)}
_SHOWN = 20  # bad events named in the error message (all are in `rejected`)


def _lines(accepted: list, fmt: str, rejected: list, metrics) -> tuple[list, list[str]]:
    """The raw log lines of the accepted events; an event a CSV log cannot hold (a line break
    in an id) joins `rejected` as `malformed_csv`."""
    if fmt != "csv":
        return accepted, [event_line(e) for _, e in accepted]
    kept, lines = [], []
    for index, event in accepted:
        try:
            lines.append(event_csv_line(event))
        except ValueError as exc:
            rejected.append({"index": index, "field": "", "reason": "malformed_csv",
                             "message": f"events[{index}]: {exc} [malformed_csv]"})  # fmt: skip
            metrics.events.labels("malformed_csv").inc()
            continue
        kept.append((index, event))
    return kept, lines


@router.post("/v1/events", response_model=EventsResponse, responses=_ERRORS)
def post_events(body: EventsBody, settings: ServerSettings, online: Online, metrics: Metrics):
    """Validate, log and store a batch of events; 400 names every bad event's field and rule."""
    cfg = settings.online_store
    if cfg is None or (online.store is None and online.events_log is None):
        raise errors.ServingError(503, "no online store is configured (online_store)")
    if len(body.events) > cfg.max_events:
        raise errors.too_large("events", len(body.events), cfg.max_events)
    now = time.time()
    accepted, rejected = [], []
    for i, raw in enumerate(body.events):
        where = f"events[{i}]"
        event, problem = validate_event(raw, where=where, now=now, max_skew_s=cfg.max_skew_s)
        if problem is None:
            accepted.append((i, event))
            continue
        rejected.append(
            {"index": i, "field": problem.field, "reason": problem.reason,
             "message": f"{problem.message} [{problem.reason}]"}
        )  # fmt: skip
        metrics.events.labels(problem.reason).inc()
    if accepted and online.events_log is not None:
        accepted, lines = _lines(accepted, settings.raw_events_format, rejected, metrics)
        try:
            online.events_log.append(lines)
        except (OSError, ValueError) as exc:  # nothing stored either: the client may retry
            raise errors.ServingError(503, f"cannot append to the raw event log: {exc}") from None
    stored, new = True, 0
    if accepted:
        try:
            new = online.append_events([event for _, event in accepted])
        except StoreUnavailable:
            stored = False  # in the raw log: the streaming job will bring them in
    metrics.events.labels("accepted").inc(len(accepted))
    rejected.sort(key=lambda r: r["index"])
    out = {"accepted": len(accepted), "new": new, "stored": stored, "rejected": rejected}
    if rejected:
        shown = "; ".join(r["message"] for r in rejected[:_SHOWN])
        more = f" (and {len(rejected) - _SHOWN} more)" if len(rejected) > _SHOWN else ""
        out["error"] = f"{len(rejected)} of {len(body.events)} events refused: {shown}{more}"
        return JSONResponse(out, status_code=400)
    if not stored and online.events_log is None:
        raise errors.ServingError(503, f"online store unavailable: {online.status()}")
    return JSONResponse(out)
