"""Items created after training (a room that went live today), added with their content.

`POST /v1/items` puts an item's content here; each loaded version of the retrieval model
adds the vector its item tower computes from that content to its live ANN index, without a
rebuild, the first time it is used after the item arrived (`sync`), so a version loaded
later gets the items too. An item the version was trained on keeps its trained vector.

`POST /v1/items` also records the items in the online store, and each request `absorb`s the
store's created items: after a restart, or when another server took the post, the items come
back from the store and are indexed again.
"""

from __future__ import annotations

import threading

from peppercorn.loaded_version import LoadedVersion

__all__ = ["LiveCatalogue"]


class LiveCatalogue:
    """Raw id -> content of the items added since the server started."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[dict, int]] = {}  # raw id -> (content, generation put)
        self._generation = 0
        self._lock = threading.Lock()
        self._synced: dict[tuple[str, int], int] = {}  # (uri, version) -> generation synced
        self._absorbed: dict | None = None  # the store's created dict absorbed last

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def content(self, raw_id: str) -> dict | None:
        """The content posted for `raw_id`, if any."""
        with self._lock:
            found = self._items.get(str(raw_id))
        return None if found is None else found[0]

    def put(self, retrieval: LoadedVersion, records: list[tuple[str, dict]]) -> int:
        """Check `records` against `retrieval`'s content vocabularies (ContentError naming the
        item and field), store them and add them to that version's index; how many are new
        to the index (not trained on)."""
        retrieval.retrieval.content_matrix(retrieval.vocabs, records)  # validates every one
        with self._lock:
            self._generation += 1
            for raw, content in records:
                self._items[str(raw)] = (content, self._generation)
        return self.sync(retrieval)

    def absorb(self, created: dict) -> int:
        """Take the online store's created items (raw id -> ItemState with content) that this
        catalogue does not hold with the same content; how many were new or changed.

        `created` is the store's (cached) dict: the one absorbed last is skipped at once, so a
        request pays for the comparison only when the store's rooms changed."""
        with self._lock:
            if created is self._absorbed:
                return 0
            self._absorbed = created
            fresh = [
                (raw, state.content)
                for raw, state in created.items()
                if state.content is not None
                and (raw not in self._items or self._items[raw][0] != state.content)
            ]
            if fresh:
                self._generation += 1
                for raw, content in fresh:
                    self._items[raw] = (content, self._generation)
        return len(fresh)

    def sync(self, retrieval: LoadedVersion) -> int:
        """Add the items `retrieval`'s index does not have yet; how many were added."""
        key = (retrieval.uri, retrieval.version)
        with self._lock:
            done = self._synced.get(key, 0)
            if done == self._generation:
                return 0
            generation, items = self._generation, dict(self._items)
        # Put since this version last synced (new, or new content), and not trained on.
        fresh = [
            (raw, content)
            for raw, (content, put) in items.items()
            if put > done and not retrieval.items.lookup(raw)
        ]
        index = retrieval.retrieval
        if fresh:
            vectors = retrieval.content_vectors(index.content_matrix(retrieval.vocabs, fresh))
            index.add([raw for raw, _ in fresh], vectors)
        with self._lock:
            self._synced[key] = generation
        return len(fresh)
