"""What the routers need from the app, as FastAPI dependencies: `Annotated` aliases to take
as handler parameters instead of reaching into `request.app.state`.

The providers are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
pool, which would queue even `/readyz` behind the scoring requests that fill that pool.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from serving.catalogue import LiveCatalogue
from serving.experiments import Experiments
from serving.manager import ModelManager
from serving.metrics import ServerMetrics
from serving.online import OnlineState
from serving.precomputed import PrecomputedTopK
from serving.settings import Settings

__all__ = [
    "Catalogue",
    "ExperimentSplit",
    "Manager",
    "Metrics",
    "Online",
    "Precomputed",
    "Scoring",
    "ServerSettings",
]


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _manager(request: Request) -> ModelManager:
    return request.app.state.manager


async def _metrics(request: Request) -> ServerMetrics:
    return request.app.state.metrics


async def _precomputed(request: Request) -> PrecomputedTopK | None:
    return request.app.state.precomputed


async def _scoring(request: Request) -> threading.BoundedSemaphore:
    return request.app.state.scoring


ServerSettings = Annotated[Settings, Depends(_settings)]
Manager = Annotated[ModelManager, Depends(_manager)]
Metrics = Annotated[ServerMetrics, Depends(_metrics)]
Precomputed = Annotated[PrecomputedTopK | None, Depends(_precomputed)]
# Held while a request is scored: `settings.scoring_threads` requests at a time.
Scoring = Annotated[threading.BoundedSemaphore, Depends(_scoring)]


async def _experiments(request: Request) -> Experiments:
    return request.app.state.experiments


async def _catalogue(request: Request) -> LiveCatalogue:
    return request.app.state.catalogue


async def _online(request: Request) -> OnlineState:
    return request.app.state.online


ExperimentSplit = Annotated[Experiments, Depends(_experiments)]
Catalogue = Annotated[LiveCatalogue, Depends(_catalogue)]
Online = Annotated[OnlineState, Depends(_online)]
