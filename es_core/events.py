"""The store's own records: an event on its way in (``NewEvent``, then ``PreparedEvent`` once
validated and encoded), as a backend keeps it (``StoredEvent``: payloads as bytes), and as users
read it (``RecordedEvent``: payloads decoded); snapshots and append results.

Event payloads are plain JSON-compatible dicts; the type name and schema version travel beside
them as data, never as a Python import path, so moving a class cannot orphan history.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import msgspec


class Expect(enum.Enum):
    """Expected-version modes for ``append``; an ``int`` means *exactly this version*."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


ExpectedVersion = Expect | int


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append. ``event_id`` defaults to a fresh UUID; pass one derived from the
    request to make client retries idempotent."""

    event_type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    event_id: uuid.UUID = msgspec.field(default_factory=uuid.uuid4)
    metadata: Mapping[str, Any] = msgspec.field(default_factory=dict)


class PreparedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event validated and with its payload encoded once, ready for any backend: what
    ``EventStore.append`` makes of a ``NewEvent``, and what ``EventRegistry.prepare`` makes of a
    typed event for ``EventStore.append_prepared``. (Its fields cannot hold a reference cycle,
    so the garbage collector need not track it: one command makes one.)"""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes


class StoredEvent(NamedTuple):
    """An event as a backend stores and returns it: the payloads are the JSON bytes that were
    written, the event id its 16 bytes, the time microseconds since the Unix epoch (UTC).
    ``EventStore`` decodes it into a ``RecordedEvent`` in one place (``es_core.encoding``).

    A tuple, so a backend may hand over rows in this field order as its driver returns them
    (SQLite does) without building a record per event."""

    stream_id: str
    version: int
    position: int
    event_id: bytes
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes
    recorded_at: int


PayloadRow = tuple[int, str, int, bytes]
"""(version, event type, schema version, JSON data) of a stored event: what a replay needs
(``EventStore.read_stream_payloads``)."""


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored, payloads decoded. ``version`` counts from 1 within the stream;
    ``position`` orders the global log in commit order."""

    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime


class AppendResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What an append did. ``duplicate`` is true when the events were stored by an earlier,
    identical append (a client retry): nothing new was written. (Untracked by the garbage
    collector, like ``PreparedEvent``: its fields cannot form a cycle.)"""

    stream_id: str
    first_version: int
    last_version: int
    last_position: int | None = None
    recorded_at: datetime | None = None
    duplicate: bool = False

    @property
    def count(self) -> int:
        return self.last_version - self.first_version + 1


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An aggregate's state after ``version`` events, tagged with the state's schema version so
    a snapshot written by older code is recognised and ignored rather than misread."""

    stream_id: str
    version: int
    state_type: str
    state_schema_version: int
    state: bytes
    taken_at: datetime
