"""es_core: a small, fast event-sourcing core.

An append-only event store with optimistic concurrency and idempotent appends, typed events with
schema versioning (upcasting), aggregates and a repository with snapshots, state as of a
version or a time, retention, projections, and personal fields sealed per subject so that a
subject can be forgotten (crypto-shredding). Backends: SQLite (the default), memory,
Apache Cassandra / ScyllaDB. The core imports no domain and no notebook library.
"""

from .aggregate import Aggregate, applies
from .codec import Decoded, DomainEvent, EventRegistry, UpcastStep
from .errors import (
    AlreadyForgottenError,
    ConcurrencyError,
    DuplicateEventIdError,
    EventDecodeError,
    EventSourcingError,
    HistoryTruncatedError,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStoreUrlError,
    InvalidStreamIdError,
    KeyStoreError,
    PayloadTooLargeError,
    PersonalDataError,
    PersonalDataIntegrityError,
    SchemaError,
    SnapshotError,
    StoreCorruptionError,
    StoreError,
    StoreLayoutError,
    StoreTimeoutError,
    StoreUnavailableError,
    StreamNotFoundError,
    SubjectForgottenError,
    UnhandledEventError,
    UnknownEventTypeError,
    UnknownSubjectError,
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
from .keys import KeyEncryptionKey, KeyStore, KeyTable, LocalKeyEncryptionKey
from .limits import MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES, MAX_STREAM_ID_LENGTH
from .personal import FORGOTTEN, PersonalData
from .projections import Projection, ProjectionRunner
from .repository import Repository, RepositoryStats
from .retention import JsonlArchive, archive_before_snapshot
from .snapshots import NO_SNAPSHOTS, SnapshotPolicy
from .stores import DEFAULT_STORE_URL, EventStore, MemoryStore, SQLiteStore, default_store_url, open_store

__all__ = [
    "DEFAULT_STORE_URL",
    "FORGOTTEN",
    "MAX_EVENTS_PER_APPEND",
    "MAX_PAYLOAD_BYTES",
    "MAX_STREAM_ID_LENGTH",
    "NO_SNAPSHOTS",
    "Aggregate",
    "AlreadyForgottenError",
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
    "InvalidStoreUrlError",
    "InvalidStreamIdError",
    "JsonlArchive",
    "KeyEncryptionKey",
    "KeyStore",
    "KeyStoreError",
    "KeyTable",
    "LocalKeyEncryptionKey",
    "MemoryStore",
    "NewEvent",
    "PayloadRow",
    "PayloadTooLargeError",
    "PersonalData",
    "PersonalDataError",
    "PersonalDataIntegrityError",
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
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StoredEvent",
    "StreamNotFoundError",
    "SubjectForgottenError",
    "UnhandledEventError",
    "UnknownEventTypeError",
    "UnknownSubjectError",
    "UnsupportedSchemaVersionError",
    "UpcastStep",
    "UpcasterChainError",
    "applies",
    "archive_before_snapshot",
    "default_store_url",
    "event_id_from",
    "open_store",
]
