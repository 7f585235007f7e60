"""Input validation shared by every backend, so bad input fails the same way everywhere and
before any backend is touched.

The functions check one value from scratch. A store checks through its own ``Validation``,
which remembers the stream ids and event types it has accepted, so a service that touches the
same few thousand streams pays for the patterns once per name, not once per call; the caches
live and die with the store (two stores never share them, and tests start clean).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import TypeGuard

from .encoding import encode_data, encode_metadata
from .errors import (
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStreamIdError,
    PayloadTooLargeError,
)
from .events import Expect, ExpectedVersion, NewEvent, PreparedEvent
from .limits import MAX_EVENT_TYPE_LENGTH, MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES, MAX_STREAM_ID_LENGTH

__all__ = [
    "Validation", "check_event_type", "check_expected_version", "check_stream_id", "check_version_bound",
]

_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREPARED_ONLY = {PreparedEvent}


def check_stream_id(stream_id: object) -> str:
    """``stream_id`` if it may name a stream, else ``InvalidStreamIdError`` saying why."""
    if not isinstance(stream_id, str):
        raise InvalidStreamIdError(f"stream id must be a str, not {type(stream_id).__name__}")
    if not stream_id:
        raise InvalidStreamIdError("stream id must not be empty")
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        raise InvalidStreamIdError(
            f"stream id is {len(stream_id)} characters, over the limit of {MAX_STREAM_ID_LENGTH}"
        )
    if _CONTROL.search(stream_id):
        raise InvalidStreamIdError("stream id must not contain control characters")
    return stream_id


def check_event_type(name: object) -> str:
    """``name`` if it may be stored as an event type, else ``InvalidEventError``."""
    if not isinstance(name, str) or len(name) > MAX_EVENT_TYPE_LENGTH or not _EVENT_TYPE.match(name):
        raise InvalidEventError(
            f"event type must match {_EVENT_TYPE.pattern} (at most {MAX_EVENT_TYPE_LENGTH} "
            f"characters), not {name!r}"
        )
    return name


def check_expected_version(expected: object) -> ExpectedVersion:
    if type(expected) is int and expected >= 0:  # the usual case, decided by one type check
        return expected
    if isinstance(expected, Expect):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return expected
    raise InvalidExpectedVersionError(
        f"expected version must be an Expect mode or an int >= 0, not {expected!r}"
    )


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_count(value: object) -> TypeGuard[int]:
    """An int >= 0, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_version_bound(name: str, value: object, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if is_count(value):
        return value
    raise InvalidInputError(f"{name} must be an int >= 0, not {value!r}")


class Validation:
    """One store's input checks and their caches (bounded: a service touches many streams)."""

    MAX_REMEMBERED_STREAMS = 4096
    MAX_REMEMBERED_TYPES = 1024

    def __init__(self, payload_limit: int = MAX_PAYLOAD_BYTES) -> None:
        self.payload_limit = payload_limit
        self._stream_ids: set[str] = set()  # set.add and `in` are atomic: safe across threads
        self._event_types: set[str] = set()

    def stream_id(self, stream_id: object) -> str:
        """``check_stream_id``, skipping the patterns for an id accepted recently."""
        if type(stream_id) is str and stream_id in self._stream_ids:
            return stream_id
        checked = check_stream_id(stream_id)
        if type(checked) is str:  # a str subclass could compare equal to a bad id: never cached
            if len(self._stream_ids) >= self.MAX_REMEMBERED_STREAMS:
                self._stream_ids.clear()
            self._stream_ids.add(checked)
        return checked

    def event_type(self, name: object) -> str:
        """``check_event_type``, skipping the pattern for a name accepted before."""
        if type(name) is str and name in self._event_types:
            return name
        checked = check_event_type(name)
        if type(checked) is str and len(self._event_types) < self.MAX_REMEMBERED_TYPES:
            self._event_types.add(checked)
        return checked

    def new_events(self, events: object) -> list[PreparedEvent]:
        """Validate and encode a batch of ``NewEvent``; raises before anything is written."""
        if type(events) is not list and (isinstance(events, NewEvent) or not isinstance(events, Sequence)):
            raise InvalidEventError("events must be a sequence of NewEvent")
        _check_count(len(events))
        prepared = [self._prepare(e) for e in events]
        _check_unique_ids(prepared)
        return prepared

    def prepared(self, events: object) -> list[PreparedEvent]:
        """The checks that remain for events an ``EventRegistry`` has encoded already (valid
        JSON and a valid type name by construction): the batch and payload limits, unique ids."""
        if type(events) is list and len(events) == 1:  # the common command, checked inline
            e = events[0]
            if type(e) is PreparedEvent and len(e.data) + len(e.metadata) <= self.payload_limit:
                return events
        if type(events) is not list or (events and set(map(type, events)) != _PREPARED_ONLY):
            raise InvalidEventError("prepared events must be a list of PreparedEvent")
        _check_count(len(events))
        sizes = [len(e.data) + len(e.metadata) for e in events]
        if sizes and max(sizes) > self.payload_limit:
            raise PayloadTooLargeError(max(sizes), self.payload_limit)
        _check_unique_ids(events)
        return events

    def _prepare(self, event: object) -> PreparedEvent:
        if not isinstance(event, NewEvent):
            raise InvalidEventError(f"expected a NewEvent, got {type(event).__name__}")
        self.event_type(event.event_type)
        version = event.schema_version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidEventError(f"schema version must be an int >= 1, not {version!r}")
        if not isinstance(event.event_id, uuid.UUID):
            raise InvalidEventError(f"event id must be a uuid.UUID, not {event.event_id!r}")
        data = encode_data(event.data)
        metadata = encode_metadata(event.metadata)
        prepared = PreparedEvent(event.event_id, event.event_type, version, data, metadata)
        return check_size(prepared, self.payload_limit)


def _check_count(count: int) -> None:
    if count > MAX_EVENTS_PER_APPEND:
        raise InvalidEventError(f"{count} events in one append, over the limit of {MAX_EVENTS_PER_APPEND}")


def check_size(event: PreparedEvent, payload_limit: int) -> PreparedEvent:
    size = len(event.data) + len(event.metadata)
    if size > payload_limit:
        raise PayloadTooLargeError(size, payload_limit)
    return event


def _check_unique_ids(events: list[PreparedEvent]) -> None:
    # by the ids' ints: UUID's own hash is a Python method, an int's is not
    if len(events) > 1 and len({e.event_id.int for e in events}) != len(events):
        raise InvalidEventError("the same event id appears twice in one append")
