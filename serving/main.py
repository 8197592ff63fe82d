"""The app factory: `create_app(settings)` wires the model manager, routers, error handlers
and metrics; its lifespan starts and stops the repository poller.

Scoring handlers are plain `def`s, run in FastAPI's thread pool (numpy releases the GIL), so
the event loop stays free to answer `/healthz` and `/readyz` while they work."""

from __future__ import annotations

import logging
import sys
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from peppercorn.finite import NonFiniteError
from peppercorn.model_repository import ModelRepository
from serving.catalogue import LiveCatalogue
from serving.errors import ErrorResponse, ServingError
from serving.experiments import Experiments
from serving.manager import Loader, ModelManager, open_version
from serving.metrics import ServerMetrics
from serving.middleware import LimitsAndMetrics
from serving.online import OnlineState
from serving.precomputed import PrecomputedTopK
from serving.registry_labels import RegistryLabels
from serving.routers import events, items, ops, tf_serving, web
from serving.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_SWITCH_INTERVAL_S = 0.001


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
    # A server bug (any other exception) is answered by serving.middleware.LimitsAndMetrics.
    @app.exception_handler(ServingError)
    async def serving_error(_: Request, exc: ServingError):
        return ErrorResponse({"error": exc.message}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError):
        return ErrorResponse({"error": _validation_message(exc)}, 400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException):
        return ErrorResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(NonFiniteError)
    async def non_finite(request: Request, exc: NonFiniteError):
        # The version's weights were checked when it was loaded, so this is an input that
        # overflowed; the client gets an error, never a NaN.
        log.error("non-finite scores on %s: %s", request.url.path, exc)
        return ErrorResponse({"error": f"the model produced non-finite scores: {exc}"}, 500)


def _raw_log(settings: Settings, table: str):
    """The appender of the raw `table` log, or None where the raw root is not local."""
    from peppercorn.config import join_uri
    from peppercorn.raw_log import RawLogWriter

    if settings.raw_root is None:
        return None
    try:
        return RawLogWriter(join_uri(settings.raw_root, table))
    except (ValueError, OSError) as exc:  # a remote raw root, or one this server cannot write
        log.warning("accepted %s are not appended to the raw log: %s", table, exc)
        return None


def online_state(settings: Settings, metrics: ServerMetrics) -> OnlineState:
    """The store the settings name (opened now), with the raw logs accepted input goes to."""
    from peppercorn.online_store import StoreUnavailable, open_store

    cfg = settings.online_store
    if cfg is None:
        return OnlineState(None, metrics)
    logs = {"events_log": _raw_log(settings, "events"), "items_log": _raw_log(settings, "items")}
    where = cfg.redis_url if cfg.kind == "redis" else settings.online_store_path
    try:
        store = open_store(cfg, settings.online_store_path)
    except StoreUnavailable as exc:  # e.g. a read-only data root: serve without it
        log.error("online store %s cannot be opened, serving without it: %s", where, exc)
        return OnlineState(None, metrics, describe=f"{cfg.kind} {where}", **logs)
    return OnlineState(store, metrics, describe=f"{cfg.kind} {where}", **logs)


def create_app(settings: Settings, loader: Loader = open_version) -> FastAPI:
    """A server for `settings.model_repository` (a path or URI); `loader` opens one version
    (`ExportedVersion.open()` unless a test swaps it)."""
    metrics = ServerMetrics()
    labels = None
    if settings.registry_uri is not None:  # labels follow the registry's aliases
        labels = RegistryLabels.for_uri(settings.registry_uri, settings.model_repository)
        log.info("TF Serving labels follow the aliases of %s", labels)
    manager = ModelManager(
        ModelRepository(settings.model_repository),
        settings.models,
        metrics,
        loader=loader,
        warmup_requests=settings.warmup_requests,
        label_source=labels,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # The event loop shares the GIL with the scoring threads: a thread waiting for it gets
        # it within the switch interval (5 ms by default), and one request takes several such
        # hand-offs. 1 ms keeps /readyz's tail short under load (bench/results/serve_readyz.md).
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, _SWITCH_INTERVAL_S))
        app.state.online = online_state(settings, metrics)
        manager.start(settings.poll_interval_s)
        try:
            yield
        finally:
            manager.stop()
            app.state.online.close()
            sys.setswitchinterval(switch)

    app = FastAPI(
        title="Peppercorn model server",
        description="TF Serving's REST API plus raw-id /predict and /recommend.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.manager = manager
    app.state.scoring = threading.BoundedSemaphore(settings.scoring_threads)
    app.state.experiments = Experiments.from_config(settings.experiments, metrics.registry)
    app.state.catalogue = LiveCatalogue()
    app.state.online = OnlineState(None, metrics)  # until the lifespan opens the store
    app.state.precomputed = (
        PrecomputedTopK(settings.batch_output, settings.poll_interval_s)
        if settings.batch_output
        else None
    )
    app.include_router(tf_serving.router)
    app.include_router(web.router)
    app.include_router(items.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    _install_error_handlers(app)
    app.add_middleware(LimitsAndMetrics, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
