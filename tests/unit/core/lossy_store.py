"""A memory store whose global log drops one position, as a buggy feed would. It filters the
public ``read_all_stored`` (which ``read_all`` reads through; ``read_stream`` still finds the
event), so it stands for a feed that loses an event in transit whatever the backend's internals."""

from __future__ import annotations

from collections.abc import Iterator

from es_core import MemoryStore, StoredEvent


class LossyStore(MemoryStore):
    lost = 5

    def read_all_stored(
        self, *, after: int = 0, limit: int | None = None, page_size: int = 1000
    ) -> Iterator[list[StoredEvent]]:
        pages = super().read_all_stored(after=after, limit=limit, page_size=page_size)
        return ([s for s in page if s.position != self.lost] for page in pages)
