"""The app factory: `create_app(settings)` wires the model manager, routers, error handlers
and metrics; its lifespan starts and stops the repository poller."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving.errors import ServingError
from serving.manager import ModelManager
from serving.metrics import ServerMetrics
from serving.middleware import LimitsAndMetrics
from serving.model import default_loader
from serving.precomputed import PrecomputedTopK
from serving.routers import ops, tf_serving, web
from serving.settings import Settings, local_path

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":
            parts.append(f"body is not valid JSON: {err.get('ctx', {}).get('error', '')}")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError):
        return JSONResponse({"error": exc.message}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_message(exc)}, 400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal server error (logged)"}, 500)


def create_app(settings: Settings, loader: Callable[[Path], Any] = default_loader) -> FastAPI:
    """A server for `settings.model_repository`; `loader` reads one saved version directory."""
    metrics = ServerMetrics()
    manager = ModelManager(
        local_path(settings.model_repository),
        settings.models,
        metrics,
        loader=loader,
        warmup_requests=settings.warmup_requests,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        manager.start(settings.poll_interval_s)
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(
        title="Peppercorn model server",
        description="TF Serving's REST API plus raw-id /predict and /recommend.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.manager = manager
    app.state.precomputed = (
        PrecomputedTopK(settings.batch_output, settings.poll_interval_s)
        if settings.batch_output
        else None
    )
    app.include_router(tf_serving.router)
    app.include_router(web.router)
    app.include_router(ops.router)
    _install_error_handlers(app)
    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
