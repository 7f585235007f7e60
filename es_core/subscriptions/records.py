"""What the subscription layer stores and hands out: a subscription's state, a parked event,
a delivery to a handler, and the status an operator reads."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..codec import DomainEvent
from ..encoding import StoredRecord
from ..errors import InvalidSubscriptionError
from ..events import RecordedEvent

ACTIVE, PAUSED, STOPPED = "active", "paused", "stopped"
STATUSES = (ACTIVE, PAUSED, STOPPED)
PARK, STOP = "park", "stop"
MAX_NAME_LENGTH = 200
MAX_REASON_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """A subscription's stored row. ``position``: every event at or before it has had its
    effect. ``reset_to``: an operator's reset, applied when the subscription next starts.
    ``owner``/``lease_until`` (seconds since the epoch): the copy that runs it, if any."""

    name: str
    position: int = 0
    status: str = ACTIVE
    owner: str | None = None
    lease_until: float = 0.0
    reset_to: int | None = None
    last_error: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event whose handler failed ``attempts`` times; its effect is missing until it is
    retried after a fix (``Subscription.retry_parked``) or skipped with a reason."""

    subscription: str
    event_id: uuid.UUID
    position: int
    stream_id: str
    version: int
    event_type: str
    error: str
    attempts: int
    parked_at: float


@dataclass(frozen=True, slots=True)
class SkippedEvent:
    """An event an operator told the subscription to pass over, and why."""

    subscription: str
    event_id: uuid.UUID
    reason: str
    skipped_at: float


class Delivery(NamedTuple):
    """One event handed to a handler.

    ``record`` is the stored event, read like a ``RecordedEvent`` (``event_id``, ``position``,
    ``stream_id``, ``version``, ``data``, ...): a ``StoredRecord`` whose payloads are decoded
    when first read (``record.to_recorded()`` makes the ``RecordedEvent``); ``event`` the typed
    event decoded from it when the subscription has a registry (a record that upcasts into
    several events is delivered once per event). ``tx`` is what the
    target's writes go through: the open ``sqlite3.Connection`` of the page's transaction on
    SQLite, the store's Cassandra session on Cassandra, None in memory. (A named tuple: one is
    made per event, and a tuple is the cheapest thing Python makes.)"""

    record: RecordedEvent | StoredRecord
    event: DomainEvent | None
    tx: Any

    @property
    def position(self) -> int:
        return self.record.position

    @property
    def event_id(self) -> uuid.UUID:
        return self.record.event_id


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """What ``status`` reports for one subscription.

    ``lag_events``: events after ``position`` up to the store's head (exact on memory and
    SQLite unless retention removed some, then fewer; counted by reading, up to
    ``lag_events_cap``, on stores with sparse positions). ``lag_seconds``: how long the oldest
    event not yet handled has waited (0 when caught up). ``running``: a live copy holds the
    lease."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    status: str
    running: bool
    owner: str | None
    parked: int
    reset_to: int | None
    last_error: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "position": self.position, "head": self.head, "lag_events": self.lag_events,
            "lag_seconds": round(self.lag_seconds, 3), "status": self.status, "running": self.running,
            "owner": self.owner, "parked": self.parked, "reset_to": self.reset_to, "last_error": self.last_error,
        }


def check_name(name: object) -> str:
    """Subscription names: 1..200 printable characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidSubscriptionError(
            f"a subscription name is 1..{MAX_NAME_LENGTH} printable characters, not {name!r}"
        )
    return name


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise InvalidSubscriptionError(f"a skip needs a reason of 1..{MAX_REASON_LENGTH} characters, not {reason!r}")
    return reason.strip()


def check_event_id(event_id: object) -> uuid.UUID:
    if isinstance(event_id, uuid.UUID):
        return event_id
    try:
        return uuid.UUID(str(event_id))
    except ValueError as exc:
        raise InvalidSubscriptionError(f"not an event id: {event_id!r}") from exc


_HOST = socket.gethostname()


def new_owner() -> str:
    """An owner id for one running copy: host, process id and a random tag."""
    return f"{_HOST}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists (a SIGKILLed
    copy): its lease can be taken at once instead of waiting for it to run out."""
    if not owner:
        return False
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
