"""The model contract: a registry of builders and the graph every model produces.

The contract knows no model: a model describes itself in its `ModelSpec`, its history input
included (`HistoryInput`), so this module imports none of the modules that register models.

A model's size is O((users + items) x dimensions): no variable is indexed by user AND item.
A model that scores from a user's history (fism, seqfism) takes it as an INPUT, the `history`
placeholder int32 [rows, L] (the user's items newest first, 0 = padding; rows = the batch, or
1 to broadcast one user's history against every scored item), which the trainer fills from
host-side `UserHistory` rows and serving from the history a version exports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import engine as tf
from training.data import ProfileTable, UserHistory
from training.models.layers import embedding_penalty

__all__ = [
    "HISTORY",
    "HISTORY_AFTER",
    "BuildContext",
    "Builder",
    "Factored",
    "HistoryInput",
    "SAMPLED_SOFTMAX",
    "Towers",
    "ModelGraph",
    "ModelSpec",
    "REGISTRY",
    "build_model",
    "graph_variable",
    "history_after_input",
    "history_input",
    "no_item_index",
    "register",
    "resolve_params",
    "whole_table",
]

# The history placeholder (see the module docstring). In training a model whose history
# `HistoryInput.after` is above 0 is fed, per row, the items OLDER than the row's place in the
# user's time-ordered history instead (newest first); at serving every candidate sits just
# after the user's newest item, so "older than it" is the whole history.
HISTORY = "history"
# The items NEWER than a training row's place, nearest first (oldest first), [batch, after]:
# a node with a default of zeros [1, after] (nothing is newer than a candidate at serving),
# which training feeds and a serving signature leaves out.
HISTORY_AFTER = "history_after"


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: index-space sizes, profile tables and the manifest features.

    `history_length` is L, the width of the history input (the dataset's `history_length`).
    """

    n_users: int
    n_items: int
    user_profile: ProfileTable = field(default_factory=ProfileTable)
    item_profile: ProfileTable = field(default_factory=ProfileTable)
    features: tuple[dict[str, Any], ...] = ()
    history_length: int = 50


@dataclass(frozen=True)
class Factored:
    """A model's logit as a dot product, for scoring a whole catalogue with one matmul.

    logit(u, i) = user_vector[u] . item_vectors[i] + item_bias[i] for every item i that is not
    in the history fed for u (a model without a history: every item). `user_vector` [batch, d]
    is computed from `user_idx` and the history inputs only, `item_vectors` [n_items, d] and
    `item_bias` [n_items] from variables only, so the item side is computed once per
    evaluation and each user's history is fed once, not once per (user, item) pair.

    A history model leaves the scored item out of its own history (`history_sum`), which no
    user-side vector can express: for an item in the fed history the form is not exact, and
    `training.scoring.factored_scorer` scores those few cells with the pairwise `logits`.
    """

    user_vector: tf.Node
    item_vectors: tf.Node
    item_bias: tf.Node


# The objective of a retrieval model (`Towers`): an in-batch sampled softmax instead of the
# pointwise log loss over sampled negatives.
SAMPLED_SOFTMAX = "sampled_softmax"


@dataclass(frozen=True)
class Towers:
    """A two-tower model's embeddings and its sampled-softmax training head.

    `user_embedding` [batch, d] (user_idx and the whole history) and `item_embedding`
    [batch, d] (item_idx) are L2-normalised, so retrieval is an inner-product search;
    `content_embedding` [n, d] is an item's vector from `content` [n, width] alone (the columns
    `content_spec` lists), for an item the model never saw. Training feeds `candidates` [C]
    (the batch's positives first), `correction` [batch, C] (logQ and masked accidental hits)
    and `id_keep` [C, 1]; `sampled_logits` [batch, C] are the softmax's logits.
    """

    user_embedding: tf.Node
    item_embedding: tf.Node
    content: tf.Placeholder
    content_embedding: tf.Node
    content_spec: list[dict[str, Any]]
    candidates: tf.Placeholder
    correction: tf.Placeholder
    id_keep: tf.Node
    sampled_logits: tf.Node
    temperature: float


# build(ctx, params, user_idx, item_idx, rng) -> (logits [batch], rows to regularise, inputs it
# declares beyond user_idx/item_idx as [{"name", "dtype", "table"}]), optionally followed by the
# model's `Factored` form and, for a SAMPLED_SOFTMAX model, its `Towers`; it adds its nodes to
# the default graph.
Builder = Callable[
    [BuildContext, dict[str, Any], tf.Placeholder, tf.Placeholder, np.random.Generator],
    tuple[tf.Node, list[tf.Node], list[dict[str, Any]]]
    | tuple[tf.Node, list[tf.Node], list[dict[str, Any]], Factored]
    | tuple[tf.Node, list[tf.Node], list[dict[str, Any]], Factored, Towers],
]


def _no_window(params: dict[str, Any]) -> int:
    return 0


def _not_anchored(params: dict[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class HistoryInput:
    """How a model reads each user's history (an input; the graph holds none).

    `after(params)`: the width of the "items after" window training feeds per row
    (HISTORY_AFTER); 0 (the default) for a model that reads each user's newest items only.
    Above 0, training feeds each row the windows around its place in the user's whole
    time-ordered training history, so the trainer needs the positives' time order.
    `anchored(params)`: whether a sampled negative reads its positive's place (`Batch.anchors`)
    rather than its own (which is not in the history: the newest items).
    """

    after: Callable[[dict[str, Any]], int] = _no_window
    anchored: Callable[[dict[str, Any]], bool] = _not_anchored


@dataclass(frozen=True)
class ModelSpec:
    """A named model: default hyperparameters, a builder and its history input, if any."""

    name: str
    defaults: dict[str, Any]
    build: Builder
    description: str
    history: HistoryInput | None = None
    objective: str = "pointwise"  # or SAMPLED_SOFTMAX (a builder returning `Towers`)


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to `REGISTRY` under its name and return it (models call this on import)."""
    REGISTRY[spec.name] = spec
    return spec


def history_input(ctx: BuildContext) -> tf.Placeholder:
    """The `history` placeholder, int32 [rows, L], for a builder whose spec has a history."""
    return tf.placeholder(np.int32, shape=(None, ctx.history_length), name=HISTORY)


def history_after_input(width: int) -> tf.Node:
    """The HISTORY_AFTER node: zeros [1, width] unless training feeds the items after."""
    return tf.identity(tf.constant(np.zeros((1, width), np.int32)), name=HISTORY_AFTER)


def graph_variable(name: str) -> tf.Variable:
    """The default graph's variable called `name` (one a layer helper made); KeyError if none."""
    found = [var for var in tf.get_default_graph().variables if var.name == name]
    if not found:
        raise KeyError(f"the graph being built has no variable named {name!r}")
    return found[0]


def whole_table(table: tf.Variable) -> tf.Node:
    """Every row of an embedding `table`, read through a gather as the model reads it.

    A table read only through gathers gets row-sparse gradients; data-parallel training
    (`training.distributed.apply.is_row_sparse`) checks that on every consumer in the graph, so
    a factored form reading the table whole would turn its updates dense there.
    """
    return tf.gather(table, tf.constant(np.arange(table.shape[0], dtype=np.int32)))


def no_item_index(user_idx: tf.Node) -> tf.Node:
    """int32 zeros shaped like `user_idx`: "no scored item" for a user-side `history_sum`.

    Index 0 is padding, whose weight is 0, so the own-item term it subtracts is exactly 0 and
    the sums are the user's alone.
    """
    return tf.multiply(user_idx, tf.constant(np.zeros((), np.int32)))


@dataclass
class ModelGraph:
    """A built model: its spec, graph, placeholders, score (probability) and training loss.

    A model with a history input reads the rows `load_history` hands it: `feed` fills the
    `history` input with each user's newest items, `feed_batch` with each training row's
    windows.
    """

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
    history: tf.Placeholder | None = None  # the HISTORY placeholder, where the model has one
    history_after: tf.Node | None = None  # the HISTORY_AFTER node, where the model has one
    latest: UserHistory | None = None  # each user's newest items (what serving exports)
    sequences: UserHistory | None = None  # whole time-ordered histories (training windows)
    factors: Factored | None = None  # the logit as a dot product, where the model has one
    towers: Towers | None = None  # a retrieval model's embeddings and softmax head
    softmax_labels: tf.Placeholder | None = None  # one-hot [batch, C] for `towers`

    def variable(self, name: str) -> tf.Variable:
        """The graph's variable called `name`; KeyError when there is none."""
        found = next((var for var in self.graph.variables if var.name == name), None)
        if found is None:
            raise KeyError(f"model {self.spec.name!r} has no variable named {name!r}")
        return found

    @property
    def has_history(self) -> bool:
        """Whether the model takes each user's history as an input."""
        return self.history is not None

    @property
    def history_length(self) -> int:
        """L, the width of the history input (0 for a model without one)."""
        return 0 if self.history is None else int(self.history.shape[1])

    @property
    def needs_order(self) -> bool:
        """Whether training needs each user's whole time-ordered history (`sequences`)."""
        return self.spec.history is not None and self.spec.history.after(self.params) > 0

    def load_history(self, latest: UserHistory, sequences: UserHistory | None = None) -> None:
        """Hand the model the histories its inputs are fed from (a no-op without a history).

        `latest`: each user's newest items, newest first (the features stage's `history/`);
        `sequences`: each user's whole time-ordered training history, which `feed_batch` of a
        model that `needs_order` cuts its windows from.
        """
        if self.history is None:
            return
        self.latest, self.sequences = latest, sequences

    def history_rows(self, users: np.ndarray) -> np.ndarray:
        """[len(users), L] int32: each user's newest items, newest first, 0-padded."""
        if self.latest is None:
            raise ValueError(
                f"model {self.spec.name!r} reads each user's history: call load_history first "
                "or pass the history to feed"
            )
        return self.latest.rows(users, self.history_length)

    def feed(
        self,
        users: np.ndarray,
        items: np.ndarray,
        labels: np.ndarray | None = None,
        history: np.ndarray | None = None,
    ):
        """The feed_dict for scoring (user, item) pairs, with labels for the loss.

        A model with a history input gets `history` ([len(users), L], or [1, L] to broadcast
        one user's history), by default each user's newest items (`load_history`).
        """
        out = {self.user_idx: users.astype(np.int32), self.item_idx: items.astype(np.int32)}
        if labels is not None:
            out[self.labels] = labels.astype(np.float32)
        if self.history is not None:
            rows = self.history_rows(users) if history is None else history
            out[self.history] = np.asarray(rows, np.int32)
        return out

    def feed_batch(self, batch) -> dict:
        """The feed_dict for a training `Batch`, its history windows included.

        A model that `needs_order` reads, per row, the items before and after the row's place
        in the user's history: its anchor's place (`Batch.anchors`) where the model is
        anchored, else its own item's (a sampled negative's own is not in the history).
        """
        if not self.needs_order:
            return self.feed(batch.users, batch.items, batch.labels)
        if self.sequences is None:
            raise ValueError(
                f"model {self.spec.name!r} trains on the windows around each row's place in "
                "the user's time-ordered history: load_history needs the sequences"
            )
        anchored = self.spec.history.anchored(self.params) and batch.anchors is not None
        anchors = batch.anchors if anchored else batch.items
        after = self.spec.history.after(self.params)
        before, newer = self.sequences.around(batch.users, anchors, self.history_length, after)
        out = self.feed(batch.users, batch.items, batch.labels, history=before)
        out[self.history_after] = newer
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
        built = spec.build(ctx, resolved, user_idx, item_idx, rng)
        logits, rows, extra_inputs = built[:3]
        factors = built[3] if len(built) > 3 else None
        towers = built[4] if len(built) > 4 else None
        if (towers is not None) != (spec.objective == SAMPLED_SOFTMAX):
            raise ValueError(f"model {name!r}: a {SAMPLED_SOFTMAX} spec builds Towers, only it")
        score = tf.sigmoid(logits, name="score")
        softmax_labels = None
        if towers is None:
            loss = tf.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        else:
            softmax_labels = tf.placeholder(np.float32, shape=(None, None), name="softmax_labels")
            loss = tf.softmax_cross_entropy_with_logits(
                labels=softmax_labels, logits=towers.sampled_logits
            )
        loss = tf.reduce_mean(loss)
        if l2 > 0 and rows:
            loss = tf.add(loss, tf.multiply(embedding_penalty(rows), float(l2)))
        loss = tf.identity(loss, name="loss")
    named = {node.name: node for node in [*graph.placeholders, *graph.operations]}
    history, after = named.get(HISTORY), named.get(HISTORY_AFTER)
    if (history is None) != (spec.history is None):
        raise ValueError(
            f"model {name!r}: a spec with a history input builds the {HISTORY!r} placeholder "
            "(history_input), and only such a spec does"
        )
    inputs = [
        {"name": "user_idx", "dtype": "int32", "table": "user"},
        {"name": "item_idx", "dtype": "int32", "table": "item"},
        *extra_inputs,
    ]
    if history is not None:
        inputs.append({"name": HISTORY, "dtype": "int32", "shape": [-1, ctx.history_length]})
    return ModelGraph(
        spec, resolved, graph, user_idx, item_idx, labels, logits, score, loss, inputs,
        history, after, factors=factors, towers=towers, softmax_labels=softmax_labels,
    )  # fmt: skip
