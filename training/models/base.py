"""The model contract: a registry of builders and the graph every model produces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import engine as tf
from training.data import ProfileTable
from training.models.layers import embedding_penalty

__all__ = [
    "ANCHOR_ITEM",
    "BuildContext",
    "ModelGraph",
    "ModelSpec",
    "REGISTRY",
    "USER_HISTORY",
    "build_model",
    "register",
]

# The name of the non-trainable [n_users, n_items] history table of a model that scores from the
# user's history; the trainer fills it from the positives it trains on (`load_history`).
USER_HISTORY = "user_history"
# The node a model that scores from the scored item's place in the user's history reads that
# place from (an identity of item_idx). Training feeds it each row's anchor (`Batch.anchors`), so
# a sampled negative is scored in its positive's context; serving leaves it unfed.
ANCHOR_ITEM = "anchor_item"


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: index-space sizes, profile tables and the manifest features."""

    n_users: int
    n_items: int
    user_profile: ProfileTable = field(default_factory=ProfileTable)
    item_profile: ProfileTable = field(default_factory=ProfileTable)
    features: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A named model: default hyperparameters and a builder.

    `build(ctx, params, user_idx, item_idx, rng)` returns (logits [batch], rows to regularise,
    inputs it declares beyond user_idx/item_idx as [{"name", "dtype", "table"}]).
    """

    name: str
    defaults: dict[str, Any]
    build: Callable
    description: str


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    REGISTRY[spec.name] = spec
    return spec


@dataclass
class ModelGraph:
    """A built model: its graph, placeholders, score (probability) and training loss."""

    name: str
    params: dict[str, Any]
    graph: Any
    user_idx: Any
    item_idx: Any
    labels: Any
    logits: Any
    score: Any
    loss: Any
    inputs: list[dict[str, Any]]
    anchor: Any = None  # the ANCHOR_ITEM node, where the model has one

    @property
    def needs_order(self) -> bool:
        """Whether `load_history` needs the positives' time order (sequence tables)."""
        from training.models.seqfism import SEQUENCE_TABLES

        return any(var.name in SEQUENCE_TABLES for var in self.graph.variables)

    def load_history(
        self,
        session,
        users: np.ndarray,
        items: np.ndarray,
        order: np.ndarray | None = None,
    ) -> None:
        """Fill the model's history tables (if any) from positive (user, item) pairs.

        `order` ranks the pairs in time (larger = newer, e.g. timestamps); a model with
        sequence tables needs it.
        """
        from training.models.fism import history_weights
        from training.models.seqfism import SEQUENCE_TABLES, USER_SEQUENCE, sequence_tables

        by_name = {var.name: var for var in self.graph.variables}
        if USER_HISTORY in by_name:
            n_users, n_items = by_name[USER_HISTORY].shape
            alpha = float(self.params["alpha"])
            weights = history_weights(users, items, n_users, n_items, alpha)
            session.set_value(by_name[USER_HISTORY], weights)
        if USER_SEQUENCE in by_name:
            if order is None:
                raise ValueError(
                    f"model {self.name!r} scores from the time order of each user's history: "
                    "load_history needs the positives' order (timestamps)"
                )
            n_users, n_items = by_name[USER_SEQUENCE].shape
            tables = sequence_tables(users, items, order, n_users, n_items, self.params)
            for name in SEQUENCE_TABLES:
                if name in by_name:
                    session.set_value(by_name[name], tables[name])

    def feed(self, users: np.ndarray, items: np.ndarray, labels: np.ndarray | None = None):
        """The feed_dict for scoring (user, item) pairs, with labels for the loss."""
        out = {self.user_idx: users.astype(np.int32), self.item_idx: items.astype(np.int32)}
        if labels is not None:
            out[self.labels] = labels.astype(np.float32)
        return out

    def feed_batch(self, batch) -> dict:
        """The feed_dict for a training `Batch`, its anchors included where the model reads them."""
        out = self.feed(batch.users, batch.items, batch.labels)
        if self.anchor is not None and batch.anchors is not None:
            out[self.anchor] = np.asarray(batch.anchors, np.int32)
        return out


def resolve_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The model's defaults overlaid with `params`; unknown keys are an error naming them."""
    if name not in REGISTRY:
        raise ValueError(f"model.name: unknown model {name!r}; choose one of {sorted(REGISTRY)}")
    spec = REGISTRY[name]
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise ValueError(
            f"model.params: unknown key(s) {unknown} for model {name!r}; "
            f"known: {sorted(spec.defaults)}"
        )
    return {**spec.defaults, **params}


def build_model(
    name: str, params: dict[str, Any], ctx: BuildContext, l2: float, seed: int
) -> ModelGraph:
    """Build model `name` in a new graph; loss = mean log loss + l2 * embedding penalty."""
    resolved = resolve_params(name, params)
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder(np.int32, shape=(None,), name="user_idx")
        item_idx = tf.placeholder(np.int32, shape=(None,), name="item_idx")
        labels = tf.placeholder(np.float32, shape=(None,), name="labels")
        logits, rows, extra_inputs = REGISTRY[name].build(ctx, resolved, user_idx, item_idx, rng)
        score = tf.sigmoid(logits, name="score")
        loss = tf.reduce_mean(tf.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
        if l2 > 0 and rows:
            loss = tf.add(loss, tf.multiply(embedding_penalty(rows), float(l2)))
        loss = tf.identity(loss, name="loss")
    anchor = next((op for op in graph.operations if op.name == ANCHOR_ITEM), None)
    inputs = [
        {"name": "user_idx", "dtype": "int32", "table": "user"},
        {"name": "item_idx", "dtype": "int32", "table": "item"},
        *extra_inputs,
    ]
    return ModelGraph(
        name, resolved, graph, user_idx, item_idx, labels, logits, score, loss, inputs, anchor
    )
