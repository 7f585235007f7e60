"""The project's error tree. Every error raised by ``es_core`` derives from :class:`EventSourcingError`.

::

    EventSourcingError
    ├── InvalidInputError                 bad input, refused before anything is written
    │   ├── InvalidStreamIdError          empty, too long, not a str
    │   ├── InvalidExpectedVersionError   unknown expected-version mode
    │   ├── InvalidEventError             not serialisable, bad type name, bad schema version
    │   ├── PayloadTooLargeError          one event's encoded payload over the limit
    │   ├── InvalidStoreUrlError          ``open_store`` cannot understand the URL
    │   ├── InvalidSubscriptionError      a bad subscription name, handler, option, event id or reason
    │   ├── InvalidPositionError          a negative, non-int or future position for a subscription
    │   └── InvalidSplitError             a bad split count, or a split planned on another store
    ├── ConcurrencyError                  the stream is not at the expected version
    ├── DuplicateEventIdError             an event id is stored already, not as a retry of this append
    ├── StreamNotFoundError               a read that needs the stream to exist
    ├── HistoryTruncatedError             the events needed were archived by retention
    ├── StreamGapError                    a reader met a hole (or a repeat) in a stream's versions
    ├── UnhandledEventError               an aggregate has no handler for an event in its stream
    ├── SchemaError                       stored data the code cannot read
    │   ├── UnknownEventTypeError
    │   ├── UnsupportedSchemaVersionError the stored version is newer than the code knows
    │   ├── EventDecodeError              stored payload does not fit the event's schema
    │   └── UpcasterChainError            the registry's upcaster chains are broken (start-up)
    ├── SnapshotError                     a snapshot cannot be used (always recovered from)
    ├── SubscriptionError                 a subscription cannot do what was asked (``es_core.subscriptions``)
    │   ├── UnknownSubscriptionError      no subscription of that name
    │   ├── SubscriptionBusyError         another copy holds its lease
    │   ├── SubscriptionRunningError      an operator change refused while a copy runs it
    │   ├── SubscriptionConflictError     its checkpoint moved under a running copy (lease lost)
    │   ├── SubscriptionPausedError       paused by an operator
    │   └── SubscriptionStoppedError      stopped on a poison event (policy ``stop``)
    └── StoreError                        the backend failed (translated driver errors)
        ├── StoreUnavailableError         retryable: no replica, connection refused, database locked
        │   └── StoreTimeoutError         retryable: the backend timed out; a write may or may not have landed
        │       └── StoreOutcomeUnknownError  retryable: the request reached the backend and no answer
        │                                     came back (a write may or may not have landed)
        ├── StoreAuthenticationError      the backend refused the credentials (or their absence)
        ├── StoreCorruptionError          the backend's data is damaged
        └── StoreLayoutError              the backend's tables cannot be used as they are (an older
                                          layout, a table TTL): the message says what to do

Every ``StoreUnavailableError`` is safe to retry, and an append is retried **with the same event
ids**: a store recognises a retry of an append that landed and returns its original result (with
``duplicate=True``), so a retry after an unknown outcome lands the events exactly once.

Driver errors are translated into ``StoreError`` subclasses at one boundary per backend
(``raise ... from exc``), so callers never catch ``sqlite3`` or driver exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the record lives with its checker; only its type is needed here
    from .continuity import StreamGap


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


class InvalidSubscriptionError(InvalidInputError):
    """A subscription name, handler, option, event id or reason that cannot be used."""


class InvalidPositionError(InvalidInputError):
    """A position that is not an int, is negative, or lies beyond the store's head."""


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


class StreamGapError(EventSourcingError):
    """A reader of the global log met a break in one stream's versions (``es_core.continuity``):
    an event was skipped, or delivered twice. ``gap`` is the ``StreamGap``."""

    def __init__(self, gap: StreamGap) -> None:
        super().__init__(f"hole in the feed: {gap.describe()}")
        self.gap = gap


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


class SubscriptionError(EventSourcingError):
    """A subscription cannot do what was asked; nothing was written."""


class UnknownSubscriptionError(SubscriptionError, LookupError):
    """No subscription of that name is registered with the checkpoint store."""

    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(repr(n) for n in known[:10]) or "none"
        super().__init__(f"no subscription named {name!r} (known: {listed})")
        self.name = name


class SubscriptionBusyError(SubscriptionError):
    """Another copy of the subscription holds its lease: only one may advance it."""

    def __init__(self, name: str, owner: str, seconds_left: float) -> None:
        super().__init__(
            f"subscription {name!r} is run by {owner} (lease for another {max(seconds_left, 0):.1f} s)"
        )
        self.name = name
        self.owner = owner


class SubscriptionRunningError(SubscriptionError):
    """An operator change (reset) refused because a copy of the subscription is running."""


class SubscriptionConflictError(SubscriptionError):
    """The checkpoint moved, or the lease passed to another copy, while a page was applied:
    the page was rolled back (or, on Cassandra, will be delivered again)."""


class SubscriptionPausedError(SubscriptionError):
    """The subscription is paused by an operator; ``resume`` lets it go on."""


class SubscriptionStoppedError(SubscriptionError):
    """The subscription stopped on an event its handler kept failing on (policy ``stop``);
    fix the handler and ``resume``, or ``skip`` the event with a reason."""


class StoreError(EventSourcingError):
    """The backend failed."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or is busy; safe to retry."""


class StoreTimeoutError(StoreUnavailableError):
    """The backend timed out; a write may or may not have landed, so retry with the same event ids."""


class StoreOutcomeUnknownError(StoreTimeoutError):
    """A request reached the backend and no definite answer came back: a write timed out, the
    backend reported its outcome unknown, or the connection closed with the request in flight.
    The write may or may not have landed (and may still land): retry with the same event ids."""


class StoreAuthenticationError(StoreError):
    """The backend refused the credentials, or requires credentials that were not given.
    Retrying with the same credentials will not help. Messages never contain a password."""


class StoreCorruptionError(StoreError):
    """The backend reports damaged data."""


class StoreLayoutError(StoreError):
    """The backend's tables cannot be used as they are: written by an earlier version in a layout
    this one cannot use, or set to expire rows the store relies on. The message names the upgrade
    or the statement to run."""


def _describe(expected: object) -> str:
    name = getattr(expected, "name", None)
    return name.lower().replace("_", " ") if isinstance(name, str) else f"version {expected}"
