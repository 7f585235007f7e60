"""es_core: a small, fast event-sourcing core.

An append-only event store with optimistic concurrency and idempotent appends, typed events with
schema versioning (upcasting), aggregates and a repository with snapshots, state as of a
version or a time, retention, and projections. Backends: SQLite (the default), memory,
Apache Cassandra / ScyllaDB. The core imports no domain and no notebook library.
"""

from .aggregate import Aggregate, applies
from .codec import Decoded, DomainEvent, EventRegistry, UpcastStep
from .errors import (
    ConcurrencyError,
    DuplicateEventIdError,
    EventDecodeError,
    EventSourcingError,
    HistoryTruncatedError,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidSplitError,
    InvalidStoreUrlError,
    InvalidStreamIdError,
    PayloadTooLargeError,
    SchemaError,
    SnapshotError,
    StoreCorruptionError,
    StoreError,
    StoreLayoutError,
    StoreTimeoutError,
    StoreUnavailableError,
    StreamNotFoundError,
    UnhandledEventError,
    UnknownEventTypeError,
    UnsupportedSchemaVersionError,
    UpcasterChainError,
)
from .events import (
    AppendResult,
    Expect,
    ExpectedVersion,
    NewEvent,
    PayloadRow,
    PreparedEvent,
    RecordedEvent,
    Snapshot,
    StoredEvent,
)
from .ids import event_id_from
from .limits import MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES, MAX_STREAM_ID_LENGTH
from .projections import Projection, ProjectionRunner
from .repository import Repository, RepositoryStats
from .retention import JsonlArchive, archive_before_snapshot
from .snapshots import NO_SNAPSHOTS, SnapshotPolicy
from .splits import StoreSplit
from .stores import DEFAULT_STORE_URL, EventStore, MemoryStore, SQLiteStore, default_store_url, open_store

__all__ = [
    "DEFAULT_STORE_URL",
    "MAX_EVENTS_PER_APPEND",
    "MAX_PAYLOAD_BYTES",
    "MAX_STREAM_ID_LENGTH",
    "NO_SNAPSHOTS",
    "Aggregate",
    "AppendResult",
    "ConcurrencyError",
    "Decoded",
    "DomainEvent",
    "DuplicateEventIdError",
    "EventDecodeError",
    "EventRegistry",
    "EventSourcingError",
    "EventStore",
    "Expect",
    "ExpectedVersion",
    "HistoryTruncatedError",
    "InvalidEventError",
    "InvalidExpectedVersionError",
    "InvalidInputError",
    "InvalidSplitError",
    "InvalidStoreUrlError",
    "InvalidStreamIdError",
    "JsonlArchive",
    "MemoryStore",
    "NewEvent",
    "PayloadRow",
    "PayloadTooLargeError",
    "PreparedEvent",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "Repository",
    "RepositoryStats",
    "SQLiteStore",
    "SchemaError",
    "Snapshot",
    "SnapshotError",
    "SnapshotPolicy",
    "StoreCorruptionError",
    "StoreError",
    "StoreLayoutError",
    "StoreSplit",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StoredEvent",
    "StreamNotFoundError",
    "UnhandledEventError",
    "UnknownEventTypeError",
    "UnsupportedSchemaVersionError",
    "UpcastStep",
    "UpcasterChainError",
    "applies",
    "archive_before_snapshot",
    "default_store_url",
    "event_id_from",
    "open_store",
]
