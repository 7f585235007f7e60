"""The project's error tree. Every error raised by ``es_core`` derives from :class:`EventSourcingError`.

::

    EventSourcingError
    ├── InvalidInputError                 bad input, refused before anything is written
    │   ├── InvalidStreamIdError          empty, too long, not a str
    │   ├── InvalidExpectedVersionError   unknown expected-version mode
    │   ├── InvalidEventError             not serialisable, bad type name, bad schema version
    │   ├── PayloadTooLargeError          one event's encoded payload over the limit
    │   ├── InvalidStoreUrlError          ``open_store`` cannot understand the URL
    │   └── InvalidSplitError             a bad split count, or a split planned on another store
    ├── ConcurrencyError                  the stream is not at the expected version
    ├── DuplicateEventIdError             an event id is stored already, not as a retry of this append
    ├── StreamNotFoundError               a read that needs the stream to exist
    ├── HistoryTruncatedError             the events needed were archived by retention
    ├── UnhandledEventError               an aggregate has no handler for an event in its stream
    ├── SchemaError                       stored data the code cannot read
    │   ├── UnknownEventTypeError
    │   ├── UnsupportedSchemaVersionError the stored version is newer than the code knows
    │   ├── EventDecodeError              stored payload does not fit the event's schema
    │   └── UpcasterChainError            the registry's upcaster chains are broken (start-up)
    ├── SnapshotError                     a snapshot cannot be used (always recovered from)
    └── StoreError                        the backend failed (translated driver errors)
        ├── StoreUnavailableError         retryable: no replica, connection refused, database locked
        │   └── StoreTimeoutError         retryable: the backend timed out; the write may or may not have landed
        ├── StoreCorruptionError          the backend's data is damaged
        └── StoreLayoutError              the backend's tables are an older layout: upgrade them first

Driver errors are translated into ``StoreError`` subclasses at one boundary per backend
(``raise ... from exc``), so callers never catch ``sqlite3`` or driver exceptions.
"""

from __future__ import annotations


class EventSourcingError(Exception):
    """Root of every error raised by the project."""


class InvalidInputError(EventSourcingError, ValueError):
    """Input refused before anything was written."""


class InvalidStreamIdError(InvalidInputError):
    """A stream id that is not a non-empty str within the size limit."""


class InvalidExpectedVersionError(InvalidInputError):
    """An expected version that is neither an ``Expect`` mode nor a non-negative int."""


class InvalidEventError(InvalidInputError):
    """An event whose type name, schema version, data or metadata cannot be stored."""


class PayloadTooLargeError(InvalidInputError):
    """An event whose encoded data and metadata exceed the store's payload limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"event payload is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class InvalidStoreUrlError(InvalidInputError):
    """A store URL that ``open_store`` does not understand."""


class InvalidSplitError(InvalidInputError):
    """A split count out of range, something that is not a ``StoreSplit``, or a split planned on
    another store (``EventStore.split``, ``EventStore.read_split``)."""


class ConcurrencyError(EventSourcingError):
    """The stream moved on since the caller read it: reload and decide again."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, expected {_describe(expected)}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class DuplicateEventIdError(EventSourcingError):
    """An event id is stored already, but not as an identical earlier append (not a retry)."""

    def __init__(self, event_id: object, detail: str) -> None:
        super().__init__(f"event id {event_id} is already stored: {detail}")
        self.event_id = event_id


class StreamNotFoundError(EventSourcingError):
    """The stream has no events."""


class HistoryTruncatedError(EventSourcingError):
    """The events a read needs were removed by retention, and no snapshot covers them."""


class UnhandledEventError(EventSourcingError):
    """An aggregate was given an event type it has no ``@applies`` handler for."""


class SchemaError(EventSourcingError):
    """Stored data the running code cannot read."""


class UnknownEventTypeError(SchemaError):
    """A stored event type that no registered class or upcaster knows."""

    def __init__(self, event_type: str, schema_version: int) -> None:
        super().__init__(f"unknown event type {event_type!r} (schema version {schema_version})")
        self.event_type = event_type
        self.schema_version = schema_version


class UnsupportedSchemaVersionError(SchemaError):
    """A stored schema version newer than the code knows (e.g. after a deploy was rolled back)."""

    def __init__(self, event_type: str, schema_version: int, known: int) -> None:
        super().__init__(
            f"event type {event_type!r} is stored at schema version {schema_version}, "
            f"but this code knows up to version {known}"
        )
        self.event_type = event_type
        self.schema_version = schema_version
        self.known = known


class EventDecodeError(SchemaError):
    """A stored payload that does not fit its event class after upcasting."""


class UpcasterChainError(SchemaError):
    """The upcaster registry is inconsistent: a gap, a duplicate step, or a step to nowhere."""


class SnapshotError(EventSourcingError):
    """A snapshot that cannot be used; repositories recover by replaying events."""


class StoreError(EventSourcingError):
    """The backend failed."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or is busy; safe to retry."""


class StoreTimeoutError(StoreUnavailableError):
    """The backend timed out; a write may or may not have landed, so retry with the same event ids."""


class StoreCorruptionError(StoreError):
    """The backend reports damaged data."""


class StoreLayoutError(StoreError):
    """The backend's tables were written by an earlier version in a layout this one cannot use;
    the message names the upgrade to run."""


def _describe(expected: object) -> str:
    name = getattr(expected, "name", None)
    return name.lower().replace("_", " ") if isinstance(name, str) else f"version {expected}"
