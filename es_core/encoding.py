"""Payloads as stored: JSON bytes in, and (in one place) stored events back out.

Encoding refuses what JSON cannot keep exactly (non-str keys, NaN, naive datetimes, unknown
types) with ``InvalidEventError``. Decoding turns a backend's ``StoredEvent`` into the
``RecordedEvent`` users see; stored bytes that cannot be read (not JSON, an event id of the wrong
length, a time that is not a number) raise ``StoreCorruptionError`` naming the event, whichever
backend they came from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import msgspec
import msgspec.inspect

from .clock import EPOCH, moment
from .errors import InvalidEventError, StoreCorruptionError
from .events import RecordedEvent, StoredEvent
from .ids import UNKNOWN_SAFETY, new_uuid, set_int, set_is_safe, uuid_from_bytes

__all__ = [
    "NO_METADATA", "StoredRecord", "decode_stored", "decode_stored_page", "decode_stored_pages", "encode_data",
    "encode_metadata", "encodes_as_strict_json",
]

NO_METADATA = b"{}"
"""The stored form of empty metadata."""

_encoder = msgspec.json.Encoder()
_decode = msgspec.json.decode
_INF = float("inf")
_STR_ONLY = frozenset({str})
_PLAIN = frozenset({str, int, bool, type(None)})  # exact types that JSON keeps as they are
_PLAIN_OR_NESTED = _PLAIN | {dict, list}
_UNREADABLE = (msgspec.DecodeError, TypeError, ValueError, OverflowError)


# -- encoding ----------------------------------------------------------------------------------


def encode_data(value: object) -> bytes:
    """An event's data as stored JSON; ``InvalidEventError`` for anything JSON cannot keep."""
    return _encode_mapping("data", value)


def encode_metadata(value: object) -> bytes:
    """An event's metadata as stored JSON; ``InvalidEventError`` for anything JSON cannot keep."""
    return _encode_mapping("metadata", value)


def _encode_mapping(name: str, value: object) -> bytes:
    if type(value) is dict and not value:  # the usual empty metadata
        return NO_METADATA
    try:
        plain = type(value) is dict and plain_json(value)
    except RecursionError as exc:
        raise InvalidEventError(f"event {name} is nested too deeply to store") from exc
    if not plain:
        if not isinstance(value, Mapping):
            raise InvalidEventError(f"event {name} must be a mapping, not {type(value).__name__}")
        if type(value) is not dict:
            value = dict(value)  # any Mapping: the encoder takes dicts
    try:
        return _encoder.encode(value if plain else checked_json(value, name))
    except RecursionError as exc:
        raise InvalidEventError(f"event {name} is nested too deeply to store") from exc
    except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidEventError(f"event {name} is not JSON-serialisable: {exc}") from exc


def plain_json(value: dict[Any, Any] | list[Any]) -> bool:
    """The fast path of ``checked_json`` for the common payload: dicts with str keys and lists,
    holding str, int, bool and None. It looks at sets of exact types built in C instead of
    walking every item in Python; anything else (floats, which need the NaN check, tuples,
    subclasses, other types) answers False and takes ``checked_json``. It only ever accepts
    what ``checked_json`` accepts (a test holds it to that)."""
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
    return all(plain_json(item) for item in items if type(item) is dict or type(item) is list)


def checked_json(value: Any, where: str) -> Any:
    """``value`` if JSON keeps it exactly; else ``TypeError`` or ``ValueError`` naming where.
    Refuses what JSON would silently change (non-str keys, NaN) or cannot hold."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} has a non-str key {key!r}")
            checked_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            checked_json(item, f"{where}[{i}]")
    elif isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        raise ValueError(f"{where} is not a finite number")
    elif isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"{where} is a naive datetime; use a timezone-aware one")
    elif not isinstance(value, str | int | float | bool | type(None) | datetime | uuid.UUID):
        raise TypeError(f"{where} has a value of type {type(value).__name__}")
    return value


_STRICT_LEAVES = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.BoolType,
    msgspec.inspect.NoneType,
    msgspec.inspect.DateTimeType,
    msgspec.inspect.DateType,
    msgspec.inspect.TimeType,
    msgspec.inspect.UUIDType,
)


def encodes_as_strict_json(info: msgspec.inspect.Type, seen: set[type] | None = None) -> bool:
    """Whether every value of this type encodes to JSON that decodes back to the same value,
    with nothing ``EventStore.append`` would refuse: the condition for a typed event to skip
    the payload walk (``EventRegistry.prepare``). Unknown kinds answer False (the checked
    path), never a guess."""
    i = msgspec.inspect
    if isinstance(info, _STRICT_LEAVES):
        return True
    if isinstance(info, i.LiteralType):
        return all(type(v) in (str, int) for v in info.values)
    if isinstance(info, i.EnumType):
        return all(type(m.value) in (str, int) for m in info.cls)
    if isinstance(info, (i.ListType, i.SetType, i.FrozenSetType, i.VarTupleType)):
        return encodes_as_strict_json(info.item_type, seen)
    if isinstance(info, i.TupleType):
        return all(encodes_as_strict_json(t, seen) for t in info.item_types)
    if isinstance(info, i.DictType):  # str keys only: other keys would be stringified silently
        return isinstance(info.key_type, i.StrType) and encodes_as_strict_json(info.value_type, seen)
    if isinstance(info, i.UnionType):
        return all(encodes_as_strict_json(t, seen) for t in info.types)
    if isinstance(info, i.StructType):
        seen = seen if seen is not None else set()
        if info.cls in seen:  # a recursive struct: its fields are being checked already
            return True
        seen.add(info.cls)
        return all(encodes_as_strict_json(f.type, seen) for f in info.fields)
    return False


# -- decoding ----------------------------------------------------------------------------------


def decode_stored(stored: StoredEvent) -> RecordedEvent:
    """The ``RecordedEvent`` a stored event holds; ``StoreCorruptionError`` if its bytes cannot
    be read (not JSON, an event id that is not 16 bytes, a time that is not a number)."""
    stream_id, version, position, event_id, event_type, schema_version, data, metadata, at = stored
    try:
        return RecordedEvent(
            stream_id, version, position, uuid_from_bytes(event_id), event_type, schema_version,
            _decode(data), _decode(metadata), moment(at),
        )
    except _UNREADABLE as exc:
        raise _unreadable(stored, exc) from exc


def decode_stored_page(page: Sequence[StoredEvent]) -> list[RecordedEvent]:
    """``decode_stored`` for each of a page of stored events (a stream read)."""
    return list(decode_stored_pages((page,)))


def decode_stored_pages(pages: Iterable[Sequence[StoredEvent]]) -> Iterator[RecordedEvent]:
    """``decode_stored`` for each event of each page, lazily: the global log's reader.

    The same steps as ``decode_stored``, written out in one loop because this loop is most of
    the cost of reading the log (a test holds the two to the same results):

    * one record at a time, so each is garbage before the next is made: building a page's
      records first keeps a thousand of them alive through the collector's young-generation
      passes, which made reading the log twice as slow;
    * the event id's UUID made as ``uuid_from_bytes`` makes it, without the call;
    * one datetime for consecutive events with the same stored time (the events of one append
      share it), as datetimes are immutable.
    """
    make_uuid, set_uuid, set_safe, safety, from_bytes = new_uuid, set_int, set_is_safe, UNKNOWN_SAFETY, int.from_bytes
    decode, record = _decode, RecordedEvent
    last_at: object = None
    when = EPOCH
    stored: StoredEvent | None = None
    try:
        for page in pages:
            for stored in page:
                stream_id, version, position, event_id, event_type, schema_version, data, metadata, at = stored
                if at != last_at:
                    when, last_at = moment(at), at
                if len(event_id) != 16:
                    raise ValueError(f"a UUID is 16 bytes, not {len(event_id)}")
                made = make_uuid(UUID)
                set_uuid(made, from_bytes(event_id))
                set_safe(made, safety)
                yield record(
                    stream_id, version, position, made, event_type, schema_version, decode(data), decode(metadata), when
                )
    except _UNREADABLE as exc:
        assert stored is not None  # only reading a stored event can raise these
        raise _unreadable(stored, exc) from exc


def _unreadable(stored: StoredEvent, exc: Exception) -> StoreCorruptionError:
    where = f"stored event {stored[0]!r} v{stored[1]} (position {stored[2]})"
    return StoreCorruptionError(f"{where} is unreadable: {exc}")


class _DecodedOnce:
    """A field of ``StoredRecord`` decoded from the stored value at ``index`` on first access,
    then kept in the instance's ``__dict__`` (which Python looks in before a descriptor that
    only gets, so later reads are a dictionary lookup)."""

    def __init__(self, index: int, decode: Any) -> None:
        self.index, self.decode = index, decode

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, record: StoredRecord | None, owner: type | None = None) -> Any:
        if record is None:
            return self
        try:
            value = self.decode(record[self.index])
        except _UNREADABLE as exc:
            raise _unreadable(StoredEvent._make(record), exc) from exc
        record.__dict__[self.name] = value
        return value


def _uuid(raw: bytes) -> UUID:
    if len(raw) != 16:
        raise ValueError(f"a UUID is 16 bytes, not {len(raw)}")
    return uuid_from_bytes(raw)


class StoredRecord(tuple):  # type: ignore[type-arg]
    """A stored event (the backend's row, unchanged) read like a ``RecordedEvent``: the same
    attributes, with ``event_id``, ``data``, ``metadata`` and ``recorded_at`` decoded on first
    access (once; the same object after that). What subscriptions hand to handlers: a handler
    that reads only ``event_type`` and ``data`` pays for nothing else. ``to_recorded()`` makes
    the ``RecordedEvent``. Unreadable bytes raise ``StoreCorruptionError`` when first read."""

    stream_id: str = property(itemgetter(0))  # type: ignore[assignment]
    version: int = property(itemgetter(1))  # type: ignore[assignment]
    position: int = property(itemgetter(2))  # type: ignore[assignment]
    event_type: str = property(itemgetter(4))  # type: ignore[assignment]
    schema_version: int = property(itemgetter(5))  # type: ignore[assignment]
    event_id: UUID = _DecodedOnce(3, _uuid)  # type: ignore[assignment]
    data: dict[str, Any] = _DecodedOnce(6, _decode)  # type: ignore[assignment]
    metadata: dict[str, Any] = _DecodedOnce(7, _decode)  # type: ignore[assignment]
    recorded_at: datetime = _DecodedOnce(8, moment)  # type: ignore[assignment]

    def to_recorded(self) -> RecordedEvent:
        return RecordedEvent(
            self.stream_id, self.version, self.position, self.event_id, self.event_type, self.schema_version,
            self.data, self.metadata, self.recorded_at,
        )

    def __repr__(self) -> str:
        return f"StoredRecord({self[0]!r}, version={self[1]}, position={self[2]}, event_type={self[4]!r})"
