"""The model contract: a registry of builders and the graph every model produces.

The contract knows no model: a model describes itself in its `ModelSpec`, history tables
included (`HistoryTables`), so this module imports none of the modules that register models.
"""

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
    "Builder",
    "HistoryFiller",
    "HistoryTables",
    "ModelGraph",
    "ModelSpec",
    "REGISTRY",
    "build_model",
    "register",
    "resolve_params",
]

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


# build(ctx, params, user_idx, item_idx, rng) -> (logits [batch], rows to regularise, inputs it
# declares beyond user_idx/item_idx as [{"name", "dtype", "table"}]); it adds its nodes to the
# default graph.
Builder = Callable[
    [BuildContext, dict[str, Any], tf.Placeholder, tf.Placeholder, np.random.Generator],
    tuple[tf.Node, list[tf.Node], list[dict[str, Any]]],
]

# fill(model, session, users, items, order): write the model's history tables into `session`
# from positive (user, item) pairs; `order` ranks them in time (larger = newer, e.g.
# timestamps) and is None unless the model's `HistoryTables.needs_order`.
HistoryFiller = Callable[
    ["ModelGraph", tf.Session, np.ndarray, np.ndarray, "np.ndarray | None"], None
]


@dataclass(frozen=True)
class HistoryTables:
    """A model's non-trainable tables that hold each user's history.

    They are part of the graph, so an export serves them as they are; the trainer fills them
    (`ModelGraph.load_history`) from the positives it trains on, never from held-out items.
    """

    fill: HistoryFiller
    needs_order: bool = False  # whether `fill` reads the positives' time order


@dataclass(frozen=True)
class ModelSpec:
    """A named model: default hyperparameters, a builder and its history tables, if any."""

    name: str
    defaults: dict[str, Any]
    build: Builder
    description: str
    history: HistoryTables | None = None


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to `REGISTRY` under its name and return it (models call this on import)."""
    REGISTRY[spec.name] = spec
    return spec


@dataclass
class ModelGraph:
    """A built model: its spec, graph, placeholders, score (probability) and training loss."""

    spec: ModelSpec
    params: dict[str, Any]
    graph: tf.Graph
    user_idx: tf.Placeholder
    item_idx: tf.Placeholder
    labels: tf.Placeholder
    logits: tf.Node
    score: tf.Node
    loss: tf.Node
    inputs: list[dict[str, Any]]
    anchor: tf.Node | None = None  # the ANCHOR_ITEM node, where the model has one

    def variable(self, name: str) -> tf.Variable:
        """The graph's variable called `name`; KeyError when there is none."""
        found = next((var for var in self.graph.variables if var.name == name), None)
        if found is None:
            raise KeyError(f"model {self.spec.name!r} has no variable named {name!r}")
        return found

    @property
    def has_history(self) -> bool:
        """Whether the model has history tables for `load_history` to fill."""
        return self.spec.history is not None

    @property
    def needs_order(self) -> bool:
        """Whether `load_history` needs the positives' time order."""
        return self.spec.history is not None and self.spec.history.needs_order

    def load_history(
        self,
        session: tf.Session,
        users: np.ndarray,
        items: np.ndarray,
        order: np.ndarray | None = None,
    ) -> None:
        """Fill the model's history tables (if any) from positive (user, item) pairs.

        `order` ranks the pairs in time (larger = newer, e.g. timestamps); a model whose
        history `needs_order` refuses to load without it.
        """
        history = self.spec.history
        if history is None:
            return
        if history.needs_order and order is None:
            raise ValueError(
                f"model {self.spec.name!r} scores from the time order of each user's history: "
                "load_history needs the positives' order (timestamps)"
            )
        history.fill(self, session, users, items, order if history.needs_order else None)

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
    spec = REGISTRY[name]
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        user_idx = tf.placeholder(np.int32, shape=(None,), name="user_idx")
        item_idx = tf.placeholder(np.int32, shape=(None,), name="item_idx")
        labels = tf.placeholder(np.float32, shape=(None,), name="labels")
        logits, rows, extra_inputs = spec.build(ctx, resolved, user_idx, item_idx, rng)
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
        spec, resolved, graph, user_idx, item_idx, labels, logits, score, loss, inputs, anchor
    )
