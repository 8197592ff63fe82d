"""The benchmark workload: NCF-MLP on ML-100K's shapes, as fixed numpy batches.

Both frameworks train on exactly these arrays, so their throughputs compare like for like.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "EMBEDDING_DIM",
    "HIDDEN_UNITS",
    "LEARNING_RATE",
    "NEGATIVES_PER_POSITIVE",
    "NUM_ITEMS",
    "NUM_USERS",
    "Batch",
    "initial_weights",
    "load_positives",
    "make_batches",
]

NUM_USERS = 943
NUM_ITEMS = 1682
EMBEDDING_DIM = 32
# Layer widths after the 2 * EMBEDDING_DIM concatenation; the last one is the logit.
HIDDEN_UNITS = (32, 16, 8, 1)
LEARNING_RATE = 0.001
NEGATIVES_PER_POSITIVE = 4
NCF_TRAIN_FILE = Path(__file__).resolve().parents[2] / "shared/datasets/ml-100k-ncf/train.rating"


@dataclass(frozen=True)
class Batch:
    """One training batch: user and item indices (int32) and 0/1 labels (float32, shape [n, 1])."""

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray


def load_positives(rng: np.random.Generator, count: int = 99_057) -> tuple[np.ndarray, str]:
    """Training positives: the real ml-100k-ncf pairs when ../shared has them, else synthetic.

    Returns (pairs [n, 2] int32, a description of the source for the results file).
    """
    if NCF_TRAIN_FILE.is_file():
        table = np.loadtxt(NCF_TRAIN_FILE, dtype=np.int64, usecols=(0, 1), ndmin=2)
        if table.size and table[:, 0].max() < NUM_USERS and table[:, 1].max() < NUM_ITEMS:
            return table.astype(np.int32), f"ml-100k-ncf train.rating ({len(table)} pairs)"
    users = rng.integers(0, NUM_USERS, size=count, dtype=np.int32)
    items = rng.integers(0, NUM_ITEMS, size=count, dtype=np.int32)
    return np.stack([users, items], axis=1), f"synthetic uniform pairs ({count})"


def make_batches(
    positives: np.ndarray, batch_size: int, num_batches: int, rng: np.random.Generator
) -> list[Batch]:
    """Shuffled batches of positives plus 4 uniformly sampled negatives per positive.

    Negatives are not filtered against the user's history: a benchmark needs the shapes and
    the label mix, not clean negatives.
    """
    per_batch_pos = max(1, batch_size // (1 + NEGATIVES_PER_POSITIVE))
    batches = []
    for _ in range(num_batches):
        pos = positives[rng.integers(0, len(positives), size=per_batch_pos)]
        neg_count = batch_size - per_batch_pos
        neg_users = pos[rng.integers(0, per_batch_pos, size=neg_count), 0]
        neg_items = rng.integers(0, NUM_ITEMS, size=neg_count, dtype=np.int32)
        users = np.concatenate([pos[:, 0], neg_users]).astype(np.int32)
        items = np.concatenate([pos[:, 1], neg_items]).astype(np.int32)
        labels = np.concatenate([np.ones(per_batch_pos), np.zeros(neg_count)]).astype(np.float32)
        order = rng.permutation(batch_size)
        batches.append(Batch(users[order], items[order], labels[order].reshape(-1, 1)))
    return batches


def initial_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Float32 starting weights shared by both frameworks (Glorot-uniform kernels, zero biases)."""
    weights = {
        "user_embedding": rng.normal(0.0, 0.01, (NUM_USERS, EMBEDDING_DIM)).astype(np.float32),
        "item_embedding": rng.normal(0.0, 0.01, (NUM_ITEMS, EMBEDDING_DIM)).astype(np.float32),
    }
    fan_in = 2 * EMBEDDING_DIM
    for layer, fan_out in enumerate(HIDDEN_UNITS):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights[f"dense{layer}/kernel"] = rng.uniform(-limit, limit, (fan_in, fan_out)).astype(
            np.float32
        )
        weights[f"dense{layer}/bias"] = np.zeros(fan_out, dtype=np.float32)
        fan_in = fan_out
    return weights
