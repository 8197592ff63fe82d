"""Operations: liveness, readiness, Prometheus metrics, and the token-guarded admin calls.

The admin endpoints (`:reload`, `:unload`) are off unless the server was started with
`PEPPERCORN_ADMIN_TOKEN` set: they answer 403 saying so.  With a token, a request without
`Authorization: Bearer <token>` (or with another token) gets 401.

`/healthz`, `/readyz` and `/metrics` are cheap and `async`: they answer on the event loop
even while every worker thread is busy scoring.  The admin calls may wait for a load, so they
run in the thread pool.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving import errors
from serving.dependencies import Manager, Metrics, Online, ServerSettings
from serving.errors import ErrorResponse
from serving.schemas import ErrorBody, ModelStatus
from serving.settings import Settings

__all__ = ["router"]

router = APIRouter(tags=["operations"])
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (401, 403, 404)}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(manager: Manager, online: Online):
    """Readiness: every served model has a version loaded and warmed up (an unloaded model
    has none). The online store's state is reported, not required: without it requests
    still answer, from the versions' exported histories."""
    reasons = manager.not_ready()
    if not reasons:
        return {"status": "ready", **online.status()}
    return ErrorResponse({"error": f"not ready: {'; '.join(reasons)}"}, 503)


@router.get("/metrics", response_class=Response)
async def metrics(server_metrics: Metrics) -> Response:
    """Prometheus text exposition of this server's metrics."""
    body = generate_latest(server_metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _check_token(settings: Settings, request: Request) -> None:
    token = settings.admin_token
    if not token:
        raise errors.admin_disabled()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # RFC 7235: the scheme is case-insensitive; the token itself is compared exactly, in
    # constant time.
    ok = hmac.compare_digest(given.strip().encode(), token.encode())
    if scheme.lower() != "bearer" or not ok:
        raise errors.unauthorized()


@router.post("/v1/models/{name}:reload", response_model=ModelStatus, responses=_ADMIN_ERRORS)
def reload(name: str, request: Request, manager: Manager, settings: ServerSettings):
    """Serve the model again after `:unload`, retry refused versions, rescan the repository."""
    _check_token(settings, request)
    return {"model_version_status": manager.reload(name)}


@router.post("/v1/models/{name}:unload", response_model=ModelStatus, responses=_ADMIN_ERRORS)
def unload(name: str, request: Request, manager: Manager, settings: ServerSettings):
    """Stop serving every version of the model (in-flight requests finish first)."""
    _check_token(settings, request)
    manager.unload(name)
    return {"model_version_status": manager.status(name)}
