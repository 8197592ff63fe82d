"""Reading the features stage's datasets (docs/data-contracts.md §3) with pyarrow.

Everything is read through pyarrow's filesystem layer so the dataset root may be a local path
or a URI. Evaluation sets, profiles and the seen pairs are small per user/item and are held in
memory; the training positives are either held in memory or, above the memory budget, streamed
one group of Parquet row groups at a time (see `TrainPositives`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from peppercorn.config import join_uri
from peppercorn.fs import filesystem
from training.data.errors import DatasetError
from training.data.history import UserHistory
from training.data.positives import TrainPositives

__all__ = [
    "DatasetError",
    "EvalSet",
    "FeatureDataset",
    "PAD_ITEM",
    "ProfileTable",
    "SeenItems",
    "TrainPositives",
    "UserHistory",
    "open_dataset",
]

# Fills the short rows of an evaluation set's negatives; scored as absent.
PAD_ITEM = -1


def _read_json(fs: pafs.FileSystem, path: str) -> Any:
    try:
        with fs.open_input_stream(path) as stream:
            return json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"run `make etl` first: {path} not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None


def _read_table(fs: pafs.FileSystem, path: str, columns: list[str]) -> pa.Table:
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise DatasetError(f"run `make etl` first: {path} not found")
    dataset = pads.dataset(path, filesystem=fs, format="parquet")
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {dataset.schema.names}")
    return dataset.to_table(columns=columns)


@dataclass(frozen=True)
class EvalSet:
    """Held-out positives with their sampled negatives: `users`, `items` [n], `negatives` [n, m].

    Rows with fewer than m negatives are padded with `PAD_ITEM` (-1), which scores as absent.
    """

    users: np.ndarray
    items: np.ndarray
    negatives: np.ndarray

    def __len__(self) -> int:
        return int(self.users.size)


@dataclass(frozen=True)
class SeenItems:
    """Each user's seen items as CSR (`indptr` int64 [n_users + 1], `indices` int32, sorted)."""

    indptr: np.ndarray
    indices: np.ndarray
    n_items: int

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int):
        """CSR from (user, item) pairs; duplicates are dropped."""
        keys = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
        rows = keys // n_items
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
        return cls(indptr, (keys % n_items).astype(np.int32), n_items)

    @cached_property
    def _keys(self) -> np.ndarray:
        rows = np.repeat(np.arange(self.indptr.size - 1, dtype=np.int64), np.diff(self.indptr))
        return rows * self.n_items + self.indices  # sorted, because CSR rows are sorted

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Vectorised membership test for (user, item) pairs."""
        query = users.astype(np.int64) * self.n_items + items.astype(np.int64)
        keys = self._keys
        if keys.size == 0:
            return np.zeros(query.shape, dtype=bool)
        pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        return keys[pos] == query

    def counts(self) -> np.ndarray:
        """Number of seen items per user."""
        return np.diff(self.indptr)

    def for_chunk(self, users: np.ndarray, items: np.ndarray) -> SeenItems:
        """What negative sampling excludes for a chunk of positives: all of this CSR.

        The in-memory (exact) exclusion; `training.data.exclusion.ChunkExclusion` is the
        streamed one, with the same method.
        """
        return self


@dataclass(frozen=True)
class ProfileTable:
    """A user or item profile as dense arrays indexed by user_idx / item_idx (row 0: unknown).

    `categorical` maps a feature name to int32 indices [n]; `dense` maps a name to float32 [n]
    and `vector` to float32 [n, dim]. Rows absent from the Parquet table stay zero.
    """

    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    vector: dict[str, np.ndarray] = field(default_factory=dict)
    # A multivalent categorical (a list of indices per row, e.g. item tags) as a multi-hot
    # float32 [n, vocab_size]; only models that ask for it by name read it (the two-tower
    # item tower), so the others see the same inputs as before it was loaded.
    multi_hot: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FeatureDataset:
    """An opened features dataset: manifest, sizes, and readers for each table."""

    root: str
    fs: pafs.FileSystem
    base: str
    manifest: dict[str, Any]
    vocabs: dict[str, dict[str, Any]]

    @property
    def n_users(self) -> int:
        """Rows in the user index space, including index 0 (unknown)."""
        return len(self.vocabs["user_id"]["tokens"])

    @property
    def n_items(self) -> int:
        """Rows in the item index space, including index 0 (unknown)."""
        return len(self.vocabs["item_id"]["tokens"])

    @property
    def features(self) -> list[dict[str, Any]]:
        """The manifest's feature list."""
        return list(self.manifest.get("features", []))

    @property
    def checksum(self) -> str:
        return str(self.manifest.get("checksum", ""))

    def path(self, name: str) -> str:
        """Location of a table; the manifest's `paths` entry wins over the default layout."""
        given = self.manifest.get("paths", {}).get(name)
        if given:
            return given if "://" in given or given.startswith("/") else f"{self.base}/{given}"
        return f"{self.base}/{name}"

    def train_positives(
        self, memory_budget_bytes: int, extra: EvalSet | None = None, row_bytes: int = 8
    ) -> TrainPositives:
        """The training positives; `extra` adds an evaluation set's positives (refitting).

        `row_bytes`: what one positive costs in memory, which sets the chunk size (the
        trainer's `training_bytes_per_positive`; the default counts the two index columns).
        """
        pairs = None if extra is None else (extra.users, extra.items)
        return TrainPositives(self.fs, self.path("train"), memory_budget_bytes, pairs, row_bytes)

    def seen(self) -> SeenItems:
        """Every split's (user, item) pairs (§3 `seen/`): what a version exports for serving."""
        table = _read_table(self.fs, self.path("seen"), ["user_idx", "item_idx"])
        users = table.column("user_idx").to_numpy()
        items = table.column("item_idx").to_numpy()
        self._check_range(users, self.n_users, "seen.user_idx")
        self._check_range(items, self.n_items, "seen.item_idx")
        return SeenItems.from_pairs(users, items, self.n_users, self.n_items)

    def eval_set(self, name: str) -> EvalSet:
        """The `validation` or `test` split, rows sorted by user for reproducibility."""
        table = _read_table(self.fs, self.path(name), ["user_idx", "item_idx", "negatives"])
        if table.num_rows == 0:
            raise DatasetError(f"{self.path(name)}: the {name} split is empty")
        negs = table.column("negatives").combine_chunks()
        lengths = pa.compute.list_value_length(negs).to_numpy(zero_copy_only=False)
        if lengths.min() == 0:
            raise DatasetError(f"{self.path(name)}: a row of the {name} split has no negatives")
        flat = pa.compute.list_flatten(negs).to_numpy(zero_copy_only=False).astype(np.int32)
        self._check_range(flat, self.n_items, f"{name}.negatives")
        # A user who has seen nearly the whole catalogue has fewer unseen items than the
        # protocol's negatives; such rows are padded with PAD_ITEM and scored as absent.
        width = int(lengths.max())
        negatives = np.full((lengths.size, width), PAD_ITEM, dtype=np.int32)
        negatives[np.arange(width) < lengths[:, None]] = flat
        users = table.column("user_idx").to_numpy().astype(np.int32)
        items = table.column("item_idx").to_numpy().astype(np.int32)
        order = np.lexsort((items, users))
        negatives = negatives[order]
        for arr, n, what in ((users, self.n_users, "user_idx"), (items, self.n_items, "item_idx")):
            self._check_range(arr, n, f"{name}.{what}")
        return EvalSet(users[order], items[order], negatives)

    @property
    def history_length(self) -> int:
        """L: the cap of each user's history (`history/`), the width of the history input."""
        given = self.manifest.get("history_length")
        if given is None:  # a dataset from before the history table: its config's default
            given = self.manifest.get("config", {}).get("features", {}).get("history_length", 50)
        return int(given)

    def user_history(self) -> UserHistory:
        """Each user's training items newest first, at most `history_length` (§3 `history/`)."""
        table = _read_table(self.fs, self.path("history"), ["user_idx", "item_idx"])
        users = table.column("user_idx").to_numpy().astype(np.int64)
        self._check_range(users, self.n_users, "history.user_idx")
        if np.unique(users).size != users.size:
            raise DatasetError(f"{self.path('history')}: more than one row for a user")
        lists = table.column("item_idx").combine_chunks()
        lengths = pa.compute.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
        flat = pa.compute.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.int32)
        self._check_range(flat, self.n_items, "history.item_idx")
        if lengths.size and lengths.max() > self.history_length:
            raise DatasetError(
                f"{self.path('history')}: a row holds {lengths.max()} items, above the "
                f"manifest's history_length {self.history_length}"
            )
        # Rows may arrive in any order: place each user's run at its user's CSR slot.
        counts = np.zeros(self.n_users, np.int64)
        counts[users] = lengths
        indptr = np.zeros(self.n_users + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = np.zeros(int(indptr[-1]), np.int32)
        starts = np.repeat(indptr[users] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        indices[np.arange(flat.size) + starts] = flat
        return UserHistory(indptr, indices, self.history_length)

    def profile(self, table: str) -> ProfileTable:
        """The user or item profile's manifest-declared features as index-aligned arrays."""
        key = f"{table}_idx"
        # The manifest may list the id column itself as a categorical feature; the models
        # embed ids on their own, so it is not a profile feature.
        specs = [f for f in self.features if f.get("table") == table and self._column(f) != key]
        size = self.n_users if table == "user" else self.n_items
        if not specs:
            return ProfileTable()
        columns = [key, *[self._column(f) for f in specs]]
        data = _read_table(self.fs, self.path(f"{table}_profile"), columns)
        rows = data.column(key).to_numpy().astype(np.int64)
        self._check_range(rows, size, f"{table}_profile.{key}")
        out = ProfileTable()
        for spec in specs:
            col = data.column(self._column(spec))
            if spec["type"] == "categorical" and spec.get("multivalent"):
                out.multi_hot[spec["name"]] = self._multi_hot(col, rows, size, spec)
            elif spec["type"] == "categorical":
                values = np.zeros(size, np.int32)
                values[rows] = col.fill_null(0).to_numpy().astype(np.int32)
                self._check_range(values, int(spec["vocab_size"]), spec["name"])
                out.categorical[spec["name"]] = values
            elif spec["type"] == "dense":
                values = np.zeros(size, np.float32)
                values[rows] = col.fill_null(0.0).to_numpy().astype(np.float32)
                out.dense[spec["name"]] = values
            elif spec["type"] == "vector":
                dim = int(spec["dim"])
                values = np.zeros((size, dim), np.float32)
                flat = pa.compute.list_flatten(col.combine_chunks())
                given = flat.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float32)
                if given.size != rows.size * dim:
                    raise DatasetError(f"{table}_profile.{spec['name']}: expected dim {dim}")
                values[rows] = given.reshape(-1, dim)
                out.vector[spec["name"]] = values
            else:
                raise DatasetError(f"manifest feature {spec['name']}: unknown type {spec['type']}")
        return out

    def _multi_hot(self, col, rows: np.ndarray, size: int, spec: dict[str, Any]) -> np.ndarray:
        width = int(spec["vocab_size"])
        lists = col.combine_chunks().fill_null([])
        lengths = pa.compute.list_value_length(lists).fill_null(0).to_numpy()
        flat = pa.compute.list_flatten(lists).fill_null(0).to_numpy(zero_copy_only=False)
        self._check_range(flat.astype(np.int64), width, spec["name"])
        values = np.zeros((size, width), np.float32)
        values[np.repeat(rows, lengths), flat.astype(np.int64)] = 1.0
        values[:, 0] = 0.0  # the unknown token says nothing about the item
        return values

    @staticmethod
    def _column(spec: dict[str, Any]) -> str:
        name = spec["name"]
        if spec["type"] == "categorical" and not name.endswith("_idx"):
            return f"{name}_idx"
        return name

    @staticmethod
    def _check_range(values: np.ndarray, size: int, what: str) -> None:
        if values.size and (values.min() < 0 or values.max() >= size):
            raise DatasetError(
                f"{what}: index out of range [0, {size}) (found {values.min()}..{values.max()}); "
                "the dataset and its vocabularies disagree, rerun `make etl`"
            )


def open_dataset(root: str) -> FeatureDataset:
    """Open `<root>/features` (root = `Config.dataset_root()`); missing → a `make etl` hint."""
    fs, base_root = filesystem(root)
    base = join_uri(base_root, "features")
    manifest = _read_json(fs, f"{base}/manifest.json")
    if not isinstance(manifest, dict):
        raise DatasetError(f"{base}/manifest.json: expected a JSON object")
    vocabs: dict[str, dict[str, Any]] = {}
    selector = pafs.FileSelector(f"{base}/vocab", allow_not_found=True)
    for info in fs.get_file_info(selector):
        if info.path.endswith(".json"):
            vocab = _read_json(fs, info.path)
            if not isinstance(vocab, dict) or not isinstance(vocab.get("tokens"), list):
                raise DatasetError(f"{info.path}: a vocabulary needs a `tokens` list")
            vocabs[info.base_name[: -len(".json")]] = vocab
    for needed in ("user_id", "item_id"):
        if needed not in vocabs:
            raise DatasetError(f"run `make etl` first: {base}/vocab/{needed}.json not found")
    return FeatureDataset(root, fs, base, manifest, vocabs)
