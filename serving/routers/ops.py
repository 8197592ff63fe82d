"""Operations: liveness, readiness, Prometheus metrics, and the token-guarded admin calls.

The admin endpoints (`:reload`, `:unload`) are off unless the server was started with
`PEPPERCORN_ADMIN_TOKEN` set: they answer 403 saying so.  With a token, a request without
`Authorization: Bearer <token>` (or with another token) gets 401.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving import errors
from serving.schemas import ErrorBody, ModelStatus

__all__ = ["router"]

router = APIRouter(tags=["operations"])
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {c: {"model": ErrorBody} for c in (401, 403, 404)}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(request: Request):
    """Readiness: one version of every served model is loaded and warmed up."""
    if request.app.state.manager.ready():
        return {"status": "ready"}
    return JSONResponse({"error": "not ready: a model has no version loaded yet"}, 503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of this server's metrics."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _check_token(request: Request) -> None:
    token = request.app.state.settings.admin_token
    if not token:
        raise errors.admin_disabled()
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise errors.unauthorized()


@router.post("/v1/models/{name}:reload", response_model=ModelStatus, responses=_ADMIN_ERRORS)
def reload(name: str, request: Request):
    """Serve the model again after `:unload`, retry refused versions, rescan the repository."""
    _check_token(request)
    return {"model_version_status": request.app.state.manager.reload(name)}


@router.post("/v1/models/{name}:unload", response_model=ModelStatus, responses=_ADMIN_ERRORS)
def unload(name: str, request: Request):
    """Stop serving every version of the model (in-flight requests finish first)."""
    _check_token(request)
    manager = request.app.state.manager
    manager.unload(name)
    return {"model_version_status": manager.status(name)}
