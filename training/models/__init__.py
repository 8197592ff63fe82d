"""Recommender models built only from `engine`, chosen by name in config.

`base` is the contract; each model module registers its `ModelSpec` when imported. The
registry's API (`REGISTRY`, `build_model`, `resolve_params`) is handed out only after every
model module is imported, so a model asked for by name is always there, while importing the
contract alone (as every model module does) imports no model.
"""

from __future__ import annotations

import importlib
from typing import Any

from training.models.base import BuildContext, HistoryInput, ModelGraph, ModelSpec

__all__ = [
    "REGISTRY",
    "BuildContext",
    "HistoryInput",
    "ModelGraph",
    "ModelSpec",
    "build_model",
    "resolve_params",
]

# Every module that registers a model; a new model module is listed here.
_MODEL_MODULES = ("fism", "ncf", "ranker", "seqfism", "two_tower")
_REGISTRY_API = ("REGISTRY", "build_model", "resolve_params")


def __getattr__(name: str) -> Any:
    """The registry's API, once every model module has registered its models."""
    if name not in _REGISTRY_API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _MODEL_MODULES:
        importlib.import_module(f"{__name__}.{module}")
    from training.models import base

    value = getattr(base, name)
    globals()[name] = value  # later look-ups skip this hook
    return value
