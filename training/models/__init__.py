"""Recommender models built only from `engine`, chosen by name in config."""

from training.models import fism, ncf, ranker, seqfism  # noqa: F401  (registers the models)
from training.models.base import (
    REGISTRY,
    BuildContext,
    ModelGraph,
    ModelSpec,
    build_model,
    resolve_params,
)

__all__ = ["REGISTRY", "BuildContext", "ModelGraph", "ModelSpec", "build_model", "resolve_params"]
