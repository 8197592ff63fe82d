"""The training positives of a features dataset, held in memory or streamed by row group."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from training.data.errors import DatasetError

__all__ = ["TrainPositives", "training_bytes_per_positive"]

# Bytes per training positive once in memory: two int32 indices (the default of a plain
# reader; the trainer passes `training_bytes_per_positive`, what training a chunk costs).
_BYTES_PER_POSITIVE = 8


def training_bytes_per_positive(negatives: int) -> int:
    """Bytes one positive costs while its chunk is trained on, with `negatives` negatives each.

    The chunk's pairs and their shuffled copy with its int64 permutation (24); the chunk's
    exclusion CSR, built through sorted int64 keys (24); per training row (the positive and
    its negatives) the int32 users, items, anchors and float32 labels before and after the
    shuffle with its int64 order (40); per negative, the sampler's int64 membership queries
    and search positions (40). Measured peaks stay within this (tests/training/
    test_streaming_memory.py), so `training.memory_budget_mb` bounds the chunk's real cost,
    not only its two index columns.
    """
    return 48 + (1 + negatives) * 40 + negatives * 40


class TrainPositives:
    """The training positives, in memory or streamed by Parquet row group.

    `epoch_chunks(rng)` yields shuffled (users, items) chunks covering every positive once.
    In memory there is one chunk, a full permutation. Streamed, the row-group fragments are
    visited in a random order and grouped into chunks that fit the memory budget; each chunk
    is permuted, so the shuffle is exact within a chunk and random across chunks.
    """

    def __init__(
        self,
        fs: pafs.FileSystem,
        path: str,
        memory_budget_bytes: int,
        extra: tuple[np.ndarray, np.ndarray] | None = None,
        row_bytes: int = _BYTES_PER_POSITIVE,
    ):
        self._path = path
        self._budget_bytes = memory_budget_bytes
        # Extra positives (the validation pairs, when refitting) travel as one more chunk.
        self._extra = (
            None if extra is None else (extra[0].astype(np.int32), extra[1].astype(np.int32))
        )
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise DatasetError(f"run `make etl` first: {path} not found")
        self._dataset = pads.dataset(path, filesystem=fs, format="parquet")
        for col in ("user_idx", "item_idx"):
            if col not in self._dataset.schema.names:
                raise DatasetError(f"{path}: missing column {col!r}")
        self._row_groups = [
            rg for fragment in self._dataset.get_fragments() for rg in fragment.split_by_row_group()
        ]
        self._row_counts = [rg.row_groups[0].num_rows for rg in self._row_groups]
        extra_rows = 0 if self._extra is None else int(self._extra[0].size)
        self.count = int(sum(self._row_counts)) + extra_rows
        self.budget_rows = max(1, memory_budget_bytes // row_bytes)
        self.streamed = self.count > self.budget_rows
        self._in_memory = None
        if not self.streamed:
            users, items = self._read(self._row_groups)
            if self._extra is not None:
                users = np.concatenate([users, self._extra[0]])
                items = np.concatenate([items, self._extra[1]])
            # Sorted by (user, item): the dataset's content, not how Spark laid out its files
            # (partitions, file order), decides every shuffle, so two features runs of the same
            # data train alike (as training.distributed's shards do).
            order = np.lexsort((items, users))
            self._in_memory = (users[order], items[order])

    def _read(self, fragments: list) -> tuple[np.ndarray, np.ndarray]:
        if not fragments:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        tables = [f.to_table(columns=["user_idx", "item_idx"]) for f in fragments]
        table = pa.concat_tables(tables)
        return (
            table.column("user_idx").to_numpy().astype(np.int32),
            table.column("item_idx").to_numpy().astype(np.int32),
        )

    def all_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every positive, chunk by chunk, unshuffled (for counting item popularity)."""
        if self._in_memory is not None:
            yield self._in_memory
            return
        for rg in self._row_groups:
            yield self._read([rg])
        if self._extra is not None:
            yield self._extra

    def history(self, reader: str = "a model") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every positive with its time: (users, items, order int64, larger = newer).

        `order` is the `ts` column in its own unit. Extra positives (the validation pairs when
        refitting) have no timestamp; they are each user's newest remaining positive by the
        split's construction (features/split.py), so they get the largest order.

        This holds every positive, so it is refused when the positives are streamed, with an
        error naming `reader`, the count and the budget. Building each user's whole sequence
        chunk by chunk would need chunks that hold whole users in time order, i.e. a train
        table sorted by (user, ts); Spark's layout is not, and gathering users from it costs
        a scan of the whole table per chunk.
        """
        if self.streamed:
            raise DatasetError(
                f"{reader} trains on the windows around each row's place in the user's whole "
                f"time-ordered history, which holds every training positive in memory: "
                f"{self.count:,} positives, above the {self.budget_rows:,} that "
                f"training.memory_budget_mb ({self._budget_bytes / 2**20:g} MiB) allows; raise "
                "training.memory_budget_mb or train a model that reads the capped history only "
                "(fism)"
            )
        if "ts" not in self._dataset.schema.names:
            raise DatasetError(
                f"{self._path}: missing column 'ts'; a model that uses the time order of each "
                "user's history needs the training positives' timestamps (§3)"
            )
        table = self._dataset.to_table(columns=["user_idx", "item_idx", "ts"])
        ts_col = table.column("ts")
        if ts_col.null_count:
            raise DatasetError(f"{self._path}: {ts_col.null_count} null value(s) in column 'ts'")
        users = table.column("user_idx").to_numpy().astype(np.int32)
        items = table.column("item_idx").to_numpy().astype(np.int32)
        order = pa.compute.cast(ts_col, pa.int64()).to_numpy().astype(np.int64)
        if self._extra is not None:
            users = np.concatenate([users, self._extra[0]])
            items = np.concatenate([items, self._extra[1]])
            newest = np.full(self._extra[0].size, np.iinfo(np.int64).max, np.int64)
            order = np.concatenate([order, newest])
        return users, items, order

    def epoch_chunks(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of shuffled positives, as (users, items) chunks within the budget."""
        if self._in_memory is not None:
            order = rng.permutation(self.count)
            yield self._in_memory[0][order], self._in_memory[1][order]
            return
        group: list = []
        rows = 0
        for k in rng.permutation(len(self._row_groups)):
            if group and rows + self._row_counts[k] > self.budget_rows:
                yield self._shuffled(group, rng)
                group, rows = [], 0
            group.append(self._row_groups[k])
            rows += self._row_counts[k]
        if group:
            yield self._shuffled(group, rng)
        if self._extra is not None:
            order = rng.permutation(self._extra[0].size)
            yield self._extra[0][order], self._extra[1][order]

    def _shuffled(self, group: list, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        users, items = self._read(group)
        order = rng.permutation(users.size)
        return users[order], items[order]
