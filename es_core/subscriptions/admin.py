"""Operator tools: status, reset, pause/resume, skip, parked events, blue/green promotion.

Every method checks its input before it writes anything, and refuses, with a specific error,
what would lose or repeat an effect: a reset of a running subscription, a position that is not
in the log, a promotion of a read model that has not caught up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ..errors import InvalidPositionError, InvalidSubscriptionError, SubscriptionError, SubscriptionRunningError
from ..stores.base import EventStore
from ..stores.memory import MemoryStore
from ..stores.sqlite import SQLiteStore
from ..validation import is_count
from .checkpoints import Checkpoints
from .records import (
    ACTIVE,
    PAUSED,
    ParkedEvent,
    SkippedEvent,
    SubscriptionState,
    SubscriptionStatus,
    check_event_id,
    check_name,
    check_reason,
)

LAG_COUNT_CAP = 10_000
"""On stores whose positions are sparse (Cassandra), ``lag_events`` is counted by reading, up to this."""


class SubscriptionAdmin:
    """The operator's view of the subscriptions kept in ``checkpoints`` over ``store``."""

    def __init__(self, store: EventStore, checkpoints: Checkpoints) -> None:
        self.store = store
        self.checkpoints = checkpoints

    def names(self) -> list[str]:
        return self.checkpoints.names()

    def status(self, names: Sequence[str] | None = None) -> list[SubscriptionStatus]:
        """Position, head, lag in events and seconds, and state of each subscription (all by default)."""
        chosen = [check_name(n) for n in names] if names is not None else self.checkpoints.names()
        states = [self.checkpoints.get(n) for n in chosen]
        head = self.store.head_position()
        return [self._status(state, head) for state in states]

    def _status(self, state: SubscriptionState, head: int) -> SubscriptionStatus:
        lag_events, lag_seconds = self._lag(state.position, head)
        return SubscriptionStatus(
            name=state.name, position=state.position, head=head, lag_events=lag_events, lag_seconds=lag_seconds,
            status=state.status, running=self.checkpoints.is_running(state), owner=state.owner,
            parked=len(self.checkpoints.parked(state.name)), reset_to=state.reset_to, last_error=state.last_error,
        )

    def _lag(self, position: int, head: int) -> tuple[int, float]:
        if position >= head:
            return 0, 0.0
        oldest = next(iter(self.store.read_all(after=position, limit=1, as_stored=True)), None)
        if oldest is None:
            return 0, 0.0
        waited = max(0.0, (self.store.clock() - oldest.recorded_at).total_seconds())  # the store's time, as it records
        if isinstance(self.store, MemoryStore | SQLiteStore):  # dense positions: the difference counts events
            return head - position, waited
        count = sum(1 for _ in self.store.read_all(after=position, limit=LAG_COUNT_CAP, as_stored=True))
        return count, waited

    # -- changes ---------------------------------------------------------------------------

    def reset(self, name: str, position: int = 0) -> None:
        """Move ``name`` back (or forward) to ``position``, 0 for a rebuild. Applied when the
        subscription next starts, in one page with its ``on_reset`` hook; refused while it runs."""
        state = self.checkpoints.get(check_name(name))
        position = self.check_position(position)
        if self.checkpoints.is_running(state):
            raise SubscriptionRunningError(
                f"subscription {name!r} is running ({state.owner}); stop it before a reset"
            )
        self.checkpoints._set(name, reset_to=position)

    def check_position(self, position: object) -> int:
        if type(position) is not int:
            raise InvalidPositionError(f"a position is an int, not {position!r}")
        if position < 0:
            raise InvalidPositionError(f"a position cannot be negative: {position}")
        head = self.store.head_position()
        if position > head:
            raise InvalidPositionError(f"position {position} is beyond the store's head ({head})")
        return position

    def pause(self, name: str) -> None:
        """Stop handing events to ``name``; a running copy finishes its page and waits."""
        self.checkpoints.get(check_name(name))
        self.checkpoints._set(name, status=PAUSED)

    def resume(self, name: str) -> None:
        """Undo a pause, or a stop on a poison event (the event is delivered again)."""
        self.checkpoints.get(check_name(name))
        self.checkpoints._set(name, status=ACTIVE, last_error="")

    def skip(self, name: str, event_id: uuid.UUID | str, reason: str) -> SkippedEvent:
        """Never hand event ``event_id`` to ``name``'s handler (a parked one leaves the parked
        table); the reason is recorded with the time. A running copy reads the skips at the start of
        each pass (a ``catch_up()`` call, or a poll of ``run``): one under way may still deliver it."""
        self.checkpoints.get(check_name(name))
        skip = SkippedEvent(name, check_event_id(event_id), check_reason(reason), self.checkpoints.clock())
        self.checkpoints._add_skip(skip)
        return skip

    def parked(self, name: str) -> list[ParkedEvent]:
        return self.checkpoints.parked(self.checkpoints.get(check_name(name)).name)

    def skipped(self, name: str) -> list[SkippedEvent]:
        return self.checkpoints.skipped(self.checkpoints.get(check_name(name)).name)

    # -- blue/green ------------------------------------------------------------------------

    def promote(self, alias: str, name: str, *, max_lag_events: int = 0) -> None:
        """Point ``alias`` at subscription ``name`` (a new version of a read model built beside
        the live one), refusing unless it is within ``max_lag_events`` of the settled position.
        Readers that resolve the alias see the old model whole, then the new one whole."""
        alias = check_name(alias)
        if not is_count(max_lag_events):
            raise InvalidSubscriptionError(f"max_lag_events must be an int >= 0, not {max_lag_events!r}")
        state = self.checkpoints.get(check_name(name))
        settled = self.store.settled_position()
        behind = sum(1 for r in self.store.read_all(after=state.position, limit=max_lag_events + 1, as_stored=True)
                     if r.position <= settled)
        if behind > max_lag_events:
            raise SubscriptionError(
                f"subscription {name!r} is at {state.position}, more than {max_lag_events} events behind the "
                f"settled position {settled}: catch it up before promoting it"
            )
        self.checkpoints._set_alias(alias, name)

    def resolve(self, alias: str) -> str:
        """The subscription an alias points at (``SubscriptionError`` if none)."""
        name = self.checkpoints.aliases().get(check_name(alias))
        if name is None:
            raise SubscriptionError(f"no alias {alias!r} (known: {sorted(self.checkpoints.aliases())})")
        return name
