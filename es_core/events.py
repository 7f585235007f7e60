"""The store's own records: events on their way in, events as stored, snapshots, append results.

Event payloads are plain JSON-compatible dicts; the type name and schema version travel beside
them as data, never as a Python import path, so moving a class cannot orphan history.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

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


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored. ``version`` counts from 1 within the stream; ``position`` orders the
    global log in commit order."""

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


def event_id_from(*parts: object) -> uuid.UUID:
    """A deterministic event id derived from request data (e.g. a request id and an index),
    so that a retried request produces the same ids and the store recognises the retry.

    Exactly ``uuid.uuid5(namespace, "\\x1f".join(map(str, parts)))``, computed without the
    generic constructor: a service derives one per event it records."""
    digest = _sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()
    return uuid_from_int(int.from_bytes(digest[:16]) & _V5_CLEAR | _V5_SET)


def uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to be a 128-bit int, without the constructor's
    argument parsing (most of an id's cost on the append path). UUID keeps its state in two
    slots, set here as ``uuid`` itself sets them when it unpickles one."""
    made = _new_uuid(uuid.UUID)
    _set_int(made, value)
    _set_is_safe(made, _UNKNOWN_SAFETY)
    return made


def uuid_from_bytes(value: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=value)`` in a quarter of the time: reading the log makes one per event."""
    if len(value) != 16:
        raise ValueError(f"a UUID is 16 bytes, not {len(value)}")
    return uuid_from_int(int.from_bytes(value))


_NAMESPACE = uuid.UUID("6f1f0a52-3a51-4c49-9a4b-2f4f3b0d1e77")
_NAMESPACE_BYTES = _NAMESPACE.bytes
_V5_CLEAR = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1  # the version and variant bits...
_V5_SET = 5 << 76 | 0x8000 << 48  # ...set to version 5, RFC 4122 variant
_sha1 = hashlib.sha1
_new_uuid = uuid.UUID.__new__
# the slots' own descriptors: half the cost of object.__setattr__, which looks the name up first
_set_int = uuid.UUID.int.__set__  # type: ignore[attr-defined]
_set_is_safe = uuid.UUID.is_safe.__set__  # type: ignore[attr-defined]
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown
