"""Training data: the features stage's datasets (§3), negative sampling and batching."""

from training.data.dataset import (
    PAD_ITEM,
    DatasetError,
    EvalSet,
    FeatureDataset,
    ProfileTable,
    SeenItems,
    TrainPositives,
    UserHistory,
    open_dataset,
)
from training.data.sampling import Batch, batches, sample_negatives, with_negatives

__all__ = [
    "Batch",
    "DatasetError",
    "EvalSet",
    "FeatureDataset",
    "PAD_ITEM",
    "ProfileTable",
    "SeenItems",
    "TrainPositives",
    "UserHistory",
    "batches",
    "open_dataset",
    "sample_negatives",
    "with_negatives",
]
