"""Projections: read models built from the global log, rebuildable from zero, resumable from a
checkpoint. The runner reads only up to the store's *settled* position, so a projection never
passes an event that could still appear behind it, and checks each stream's versions as it goes
(``es_core.continuity``), so a hole in the feed is reported rather than stepped over.

``ProjectionRunner`` keeps its position in memory only; for positions that survive a restart,
stored with the read model's own changes, use ``es_core.subscriptions``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .codec import Decoded, EventRegistry
from .continuity import StreamGap, VersionContinuity
from .stores.base import EventStore

Progress = Callable[[int, int], None]
"""Called with (events done, events to do) as a run goes; notebooks pass a progress bar."""


class Projection(Protocol):
    """A read model: ``handle`` each decoded event in log order; ``reset`` to start over."""

    name: str

    def handle(self, item: Decoded) -> None: ...

    def reset(self) -> None: ...


class ProjectionRunner:
    """Feeds the global log to projections and remembers the last position handled.

    A hole in a stream's versions raises ``StreamGapError`` unless ``on_gap`` is given, which is
    then called with each ``StreamGap`` (an alarm) while the run goes on."""

    def __init__(
        self,
        store: EventStore,
        registry: EventRegistry,
        *projections: Projection,
        on_gap: Callable[[StreamGap], None] | None = None,
    ) -> None:
        registry.validate()
        self.on_gap = on_gap
        self.store = store
        self.registry = registry
        self.projections = list(projections)
        self.position = 0
        self.events_seen = 0

    def run(self, *, page_size: int = 1000, progress: Progress | None = None) -> int:
        """Catch up to the settled position; returns how many records were handled."""
        settled = self.store.settled_position()
        start = self.position
        total = max(0, settled - start)  # in position units: positions need not be dense
        handled = 0
        continuity = VersionContinuity(self.store, after=self.position, on_gap=self.on_gap)
        for record in self.store.read_all(after=self.position, page_size=page_size):
            if record.position > settled:
                break
            continuity.check(record)
            for event in self.registry.decode(record):
                item = Decoded(record, event)
                for projection in self.projections:
                    projection.handle(item)
            self.position = record.position
            handled += 1
            if progress is not None and handled % page_size == 0:
                progress(record.position - start, total)
        self.events_seen += handled
        if progress is not None:
            progress(total, total)
        return handled

    def rebuild(self, *, page_size: int = 1000, progress: Progress | None = None) -> int:
        """Reset every projection and replay the whole log."""
        for projection in self.projections:
            projection.reset()
        self.position = 0
        self.events_seen = 0
        return self.run(page_size=page_size, progress=progress)
