"""Checkpoints in process memory, for read models that live in Python objects.

One re-entrant lock covers every page: the handler's changes and the new position happen under
it, and a reader that takes ``lock`` sees a read model and a position that belong together.
Gone on exit, like the read model itself, so a crash cannot split them. A handler that raises
after changing its objects leaves that change behind (the layer cannot undo Python mutations):
write handlers that check first and change after, as the domain's read models do.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .checkpoints import Checkpoints, Clock, Page, check_page_state
from .records import ParkedEvent, SkippedEvent, SubscriptionState


class MemoryCheckpoints(Checkpoints):
    kind = "memory"
    rolls_back = False

    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.lock = threading.RLock()
        self._rows: dict[str, SubscriptionState] = {}
        self._parked: dict[str, dict[uuid.UUID, ParkedEvent]] = {}
        self._skipped: dict[str, dict[uuid.UUID, SkippedEvent]] = {}
        self._aliases: dict[str, str] = {}

    def create(self, name: str) -> SubscriptionState:
        with self.lock:
            return self._rows.setdefault(name, SubscriptionState(name=name, updated_at=self.clock()))

    def find(self, name: str) -> SubscriptionState | None:
        with self.lock:
            return self._rows.get(name)

    def names(self) -> list[str]:
        with self.lock:
            return sorted(self._rows)

    def _swap_owner(self, name: str, expected: str | None, owner: str | None, lease_until: float) -> bool:
        with self.lock:
            row = self._rows.get(name)
            if row is None or row.owner != expected:
                return False
            self._rows[name] = dataclasses.replace(row, owner=owner, lease_until=lease_until)
            return True

    def _set(self, name: str, **fields: Any) -> None:
        with self.lock:
            self._rows[name] = dataclasses.replace(self._rows[name], updated_at=self.clock(), **fields)

    @contextmanager
    def page(self, name: str, owner: str, start: int, lease_until: float) -> Iterator[Page]:
        with self.lock:
            page = Page(name, owner, start, lease_until)
            check_page_state(self._rows.get(name), page)
            yield page
            parked = self._parked.setdefault(name, {})
            changes: dict[str, Any] = {"position": page.position, "lease_until": lease_until}
            if page.reset_applied:
                changes["reset_to"] = None
                for event_id in [i for i, p in parked.items() if p.position > page.position]:
                    del parked[event_id]
            for event in page.parked:
                parked[event.event_id] = event
            for event_id, _how in page.resolved:
                parked.pop(event_id, None)
            self._set(name, **changes)

    def parked(self, name: str) -> list[ParkedEvent]:
        with self.lock:
            return sorted(self._parked.get(name, {}).values(), key=lambda p: p.position)

    def skipped(self, name: str) -> list[SkippedEvent]:
        with self.lock:
            return sorted(self._skipped.get(name, {}).values(), key=lambda s: s.skipped_at)

    def _add_skip(self, skip: SkippedEvent) -> None:
        with self.lock:
            self._skipped.setdefault(skip.subscription, {})[skip.event_id] = skip
            self._parked.get(skip.subscription, {}).pop(skip.event_id, None)  # a parked event skipped

    def aliases(self) -> dict[str, str]:
        with self.lock:
            return dict(self._aliases)

    def _set_alias(self, alias: str, name: str) -> None:
        with self.lock:
            self._aliases[alias] = name
