"""Where subscriptions keep their positions: beside the read model they feed.

A ``Checkpoints`` backend stores each subscription's row (position, status, lease), its parked
and skipped events, and blue/green aliases. Its one essential operation is ``page``: a context
in which a handler's writes and the new position are committed together, after checking that
this copy still holds the lease and the position has not moved:

* ``SQLiteCheckpoints``: one SQLite transaction holds the read-model rows and the position
  (exactly once; ``rolls_back``: a failed page leaves nothing behind);
* ``MemoryCheckpoints``: one lock covers the read model and the position (exactly once while
  the process lives; a failing handler's partial change to Python objects cannot be undone);
* ``CassandraCheckpoints``: the position is written after the handler's writes with a
  conditional update (at least once: a crash between the two delivers the page again).
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    SubscriptionBusyError,
    SubscriptionConflictError,
    SubscriptionPausedError,
    SubscriptionStoppedError,
    UnknownSubscriptionError,
)
from .records import ACTIVE, PAUSED, ParkedEvent, SkippedEvent, SubscriptionState, owner_is_dead

Clock = Callable[[], float]


@dataclass
class Page:
    """One unit of work: what the handlers write through (``handle``), the position to commit,
    and the parked events and resolutions to store with it."""

    name: str
    owner: str
    start: int
    lease_until: float
    handle: Any = None
    position: int = 0
    parked: list[ParkedEvent] = field(default_factory=list)
    resolved: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (event id, how)
    reset_applied: bool = False

    def __post_init__(self) -> None:
        self.position = self.start


class Checkpoints(abc.ABC):
    """The storage contract of the subscription layer (one suite tests every backend)."""

    #: True when a page that raises leaves no trace (the handler's writes are rolled back too).
    rolls_back: bool = False
    #: "memory", "sqlite" or "cassandra".
    kind: str = ""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or time.time

    # -- rows ------------------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, name: str) -> SubscriptionState:
        """Register ``name`` at position 0 if it is new; return its row either way."""

    @abc.abstractmethod
    def find(self, name: str) -> SubscriptionState | None: ...

    @abc.abstractmethod
    def names(self) -> list[str]: ...

    @abc.abstractmethod
    def _swap_owner(self, name: str, expected: str | None, owner: str | None, lease_until: float) -> bool:
        """Set owner and lease if the stored owner is still ``expected``; False if it is not."""

    @abc.abstractmethod
    def _set(self, name: str, **fields: Any) -> None:
        """Set ``status``, ``reset_to`` or ``last_error`` of an existing row."""

    @abc.abstractmethod
    def page(self, name: str, owner: str, start: int, lease_until: float) -> AbstractContextManager[Page]:
        """Begin a page at position ``start``. On a normal exit, store ``page.position``, the
        lease, the parked events and resolutions, all at once, if ``owner`` still holds the
        lease, the stored position is still ``start`` and the status is active (otherwise
        ``SubscriptionConflictError``/``SubscriptionPausedError``, and nothing of the page is
        committed where the backend ``rolls_back``). A page that raises commits nothing of
        its own."""

    @abc.abstractmethod
    def parked(self, name: str) -> list[ParkedEvent]: ...

    @abc.abstractmethod
    def skipped(self, name: str) -> list[SkippedEvent]: ...

    @abc.abstractmethod
    def _add_skip(self, skip: SkippedEvent) -> None: ...

    @abc.abstractmethod
    def aliases(self) -> dict[str, str]: ...

    @abc.abstractmethod
    def _set_alias(self, alias: str, name: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    # -- leases (shared logic over ``_swap_owner``) ----------------------------------------

    def acquire(self, name: str, owner: str, seconds: float) -> SubscriptionState:
        """Take the lease of ``name`` for ``owner``, or raise ``SubscriptionBusyError``. A lease
        that ran out, or whose owner is a dead process on this host, is taken over."""
        state = self.get(name)
        now = self.clock()
        if state.owner not in (None, owner) and state.lease_until > now and not owner_is_dead(state.owner):
            raise SubscriptionBusyError(name, state.owner or "", state.lease_until - now)
        if not self._swap_owner(name, state.owner, owner, now + seconds):
            current = self.get(name)
            raise SubscriptionBusyError(name, current.owner or "another copy", current.lease_until - now)
        return self.get(name)

    def renew(self, name: str, owner: str, seconds: float) -> None:
        if not self._swap_owner(name, owner, owner, self.clock() + seconds):
            raise SubscriptionConflictError(f"subscription {name!r}: the lease passed to another copy")

    def release(self, name: str, owner: str) -> None:
        self._swap_owner(name, owner, None, 0.0)

    def is_running(self, state: SubscriptionState) -> bool:
        """A copy holds a lease that has not run out and is not a dead process here."""
        return bool(state.owner) and state.lease_until > self.clock() and not owner_is_dead(state.owner)

    # -- reads -----------------------------------------------------------------------------

    def get(self, name: str) -> SubscriptionState:
        state = self.find(name)
        if state is None:
            raise UnknownSubscriptionError(name, self.names())
        return state

    def skip_ids(self, name: str) -> set[uuid.UUID]:
        return {s.event_id for s in self.skipped(name)}


def check_page_state(state: SubscriptionState | None, page: Page) -> None:
    """The checks every backend makes before committing a page (under its own lock/transaction)."""
    if state is None or state.owner != page.owner:
        raise SubscriptionConflictError(f"subscription {page.name!r}: the lease passed to another copy")
    if state.position != page.start:
        raise SubscriptionConflictError(
            f"subscription {page.name!r} moved to {state.position} while this copy was at {page.start}"
        )
    if state.status == PAUSED:
        raise SubscriptionPausedError(f"subscription {page.name!r} is paused")
    if state.status != ACTIVE:
        raise SubscriptionStoppedError(f"subscription {page.name!r} is {state.status}: {state.last_error}")

