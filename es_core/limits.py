"""Input validation shared by every backend, so bad input fails the same way everywhere and
before any backend is touched."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from .errors import (
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStreamIdError,
    PayloadTooLargeError,
)
from .events import Expect, ExpectedVersion, NewEvent

MAX_STREAM_ID_LENGTH = 256
"""Characters; keeps ids well inside every backend's key limits."""

MAX_PAYLOAD_BYTES = 1024 * 1024
"""Default limit on one event's encoded data plus metadata (1 MiB); stores accept a lower one."""

MAX_EVENTS_PER_APPEND = 1000
"""One append is one transaction (one conditional batch on Cassandra): keep it bounded."""

MAX_EVENT_TYPE_LENGTH = 128
_EVENT_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.:\-]*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_encoder = msgspec.json.Encoder()
_INF = float("inf")
_STR_ONLY = frozenset({str})
_PLAIN = frozenset({str, int, bool, type(None)})  # exact types that JSON keeps as they are
_PLAIN_OR_NESTED = _PLAIN | {dict, list}
_GOOD_TYPES: set[str] = set()
_GOOD_STREAM_IDS: set[str] = set()


class PreparedEvent(msgspec.Struct, frozen=True, gc=False):
    """A validated event with its payload encoded once, ready for any backend. (Its fields
    cannot hold a reference cycle, so the garbage collector need not track it: one command
    makes one, and fewer tracked allocations mean fewer collections.)"""

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    data: bytes
    metadata: bytes


def check_stream_id(stream_id: object) -> str:
    if type(stream_id) is str and stream_id in _GOOD_STREAM_IDS:  # checked recently: skip the pattern
        return stream_id
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
    if type(stream_id) is str:
        if len(_GOOD_STREAM_IDS) >= 4096:  # bounded: a service touches many streams
            _GOOD_STREAM_IDS.clear()
        _GOOD_STREAM_IDS.add(stream_id)
    return stream_id


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


def check_version_bound(name: str, value: object, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInputError(f"{name} must be an int >= 0, not {value!r}")


def prepare_events(events: object, payload_limit: int = MAX_PAYLOAD_BYTES) -> list[PreparedEvent]:
    """Validate and encode a batch; raises before anything is written."""
    if type(events) is not list and (isinstance(events, NewEvent) or not isinstance(events, Sequence)):
        raise InvalidEventError("events must be a sequence of NewEvent")
    _check_count(len(events))
    prepared = [_prepare(e, payload_limit) for e in events]
    _check_unique_ids(prepared)
    return prepared


def check_prepared(events: list[PreparedEvent], payload_limit: int = MAX_PAYLOAD_BYTES) -> list[PreparedEvent]:
    """The checks that remain for events an ``EventRegistry`` has encoded already (valid JSON
    and a valid type name by construction): the batch and payload limits, and unique ids."""
    if type(events) is list and len(events) == 1:  # the common command, checked inline
        e = events[0]
        if type(e) is PreparedEvent and len(e.data) + len(e.metadata) <= payload_limit:
            return events
    if type(events) is not list or any(type(e) is not PreparedEvent for e in events):
        raise InvalidEventError("prepared events must be a list of PreparedEvent")
    _check_count(len(events))
    for e in events:
        _check_size(e, payload_limit)
    _check_unique_ids(events)
    return events


def _check_count(count: int) -> None:
    if count > MAX_EVENTS_PER_APPEND:
        raise InvalidEventError(f"{count} events in one append, over the limit of {MAX_EVENTS_PER_APPEND}")


def _check_size(event: PreparedEvent, payload_limit: int) -> PreparedEvent:
    size = len(event.data) + len(event.metadata)
    if size > payload_limit:
        raise PayloadTooLargeError(size, payload_limit)
    return event


def _check_unique_ids(events: list[PreparedEvent]) -> None:
    if len(events) > 1 and len({e.event_id for e in events}) != len(events):
        raise InvalidEventError("the same event id appears twice in one append")


def check_event_type(name: object) -> str:
    """``name`` if it may be stored as an event type, else ``InvalidEventError``."""
    if name not in _GOOD_TYPES and not _good_type(name):
        raise InvalidEventError(
            f"event type must match {_EVENT_TYPE.pattern} (at most {MAX_EVENT_TYPE_LENGTH} "
            f"characters), not {name!r}"
        )
    return name  # type: ignore[return-value]


def encode_data(value: object) -> bytes:
    """An event's data as stored JSON; ``InvalidEventError`` for anything JSON cannot keep."""
    return _encode_mapping("data", value)


NO_METADATA = b"{}"
"""The stored form of empty metadata."""


def encode_metadata(value: object) -> bytes:
    """An event's metadata as stored JSON; ``InvalidEventError`` for anything JSON cannot keep."""
    return _encode_mapping("metadata", value)


def _prepare(event: object, payload_limit: int) -> PreparedEvent:
    if not isinstance(event, NewEvent):
        raise InvalidEventError(f"expected a NewEvent, got {type(event).__name__}")
    check_event_type(event.event_type)
    version = event.schema_version
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidEventError(f"schema version must be an int >= 1, not {version!r}")
    if not isinstance(event.event_id, uuid.UUID):
        raise InvalidEventError(f"event id must be a uuid.UUID, not {event.event_id!r}")
    data = _encode_mapping("data", event.data)
    metadata = _encode_mapping("metadata", event.metadata)
    return _check_size(PreparedEvent(event.event_id, event.event_type, version, data, metadata), payload_limit)


def _good_type(name: object) -> bool:
    """Whether ``name`` is a valid event type; valid names are remembered (a service uses a few
    dozen), so the pattern runs once per name rather than once per event."""
    if not isinstance(name, str) or len(name) > MAX_EVENT_TYPE_LENGTH or not _EVENT_TYPE.match(name):
        return False
    if type(name) is str and len(_GOOD_TYPES) < 1024:
        _GOOD_TYPES.add(name)
    return True


def _encode_mapping(name: str, value: object) -> bytes:
    if type(value) is dict and not value:  # the usual empty metadata
        return NO_METADATA
    try:
        plain = type(value) is dict and _plain_json(value)
    except RecursionError as exc:
        raise InvalidEventError(f"event {name} is nested too deeply to store") from exc
    if not plain and not isinstance(value, Mapping):
        raise InvalidEventError(f"event {name} must be a mapping, not {type(value).__name__}")
    if not plain and type(value) is not dict:
        value = dict(value)  # type: ignore[call-overload]  # any Mapping: the encoder takes dicts
    try:
        return _encoder.encode(value if plain else _check_json(value, name))
    except RecursionError as exc:
        raise InvalidEventError(f"event {name} is nested too deeply to store") from exc
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidEventError(f"event {name} is not JSON-serialisable: {exc}") from exc


def _plain_json(value: dict[Any, Any] | list[Any]) -> bool:
    """Fast path for the common payload: dicts with str keys and lists, holding str, int, bool
    and None. It looks at sets of exact types built in C instead of walking every item in
    Python; anything else (floats, which need the NaN check, tuples, subclasses, other types)
    answers False and takes ``_check_json``. It only ever accepts what ``_check_json`` accepts."""
    if type(value) is dict:
        if not _STR_ONLY.issuperset(map(type, value)):
            return False
        items: Any = value.values()
    else:
        items = value
    kinds = set(map(type, items))
    if kinds <= _PLAIN:
        return True
    if not kinds <= _PLAIN_OR_NESTED:
        return False
    return all(_plain_json(item) for item in items if type(item) is dict or type(item) is list)


def _check_json(value: Any, where: str) -> Any:
    """Refuse values that JSON would silently change (non-str keys, NaN) or cannot hold."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-str key {key!r}")
            _check_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
    elif isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        raise ValueError(f"{where} is not a finite number")
    elif isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{where} is a naive datetime; use a timezone-aware one")
    elif not isinstance(value, str | int | float | bool | type(None) | datetime | uuid.UUID):
        raise TypeError(f"{where} has a value of type {type(value).__name__}")
    return value
