"""The event store contract, and the port every backend plugs into.

``EventStore``'s public methods are what applications call. They validate input once, here,
then call the backend's methods (the ones whose names start with ``_``), so every backend
refuses bad input identically and writes nothing. The backend interface is bytes-level: a
backend stores ``PreparedEvent``s and returns ``StoredEvent``s (payloads as the JSON bytes that
were written), and ``EventStore`` decodes them in one place (``es_core.encoding``), where
unreadable stored bytes become ``StoreCorruptionError`` whichever backend they came from.

Two public methods exist for the repository's hot paths and have defaults a backend may
override with a faster query: ``append_prepared`` (events encoded by an ``EventRegistry``) and
``read_stream_payloads`` (a replay's four columns, payloads undecoded).

Personal data (``protect``, ``forget``): with a ``PersonalData`` and a ``KeyStore`` attached, the
public methods seal personal fields on the way in and open them on the way out, here, in one
place; backends only ever see sealed bytes (``es_core.personal``).

Every backend must pass ``tests/contract`` unchanged.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from ..clock import Clock, micros, moment, utc_now
from ..encoding import decode_stored_page, decode_stored_pages
from ..errors import ConcurrencyError, DuplicateEventIdError, InvalidInputError, KeyStoreError, SnapshotError
from ..events import (
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
from ..keys import KeyEncryptionKey, KeyStore, KeyTable
from ..limits import MAX_PAYLOAD_BYTES
from ..personal import (
    PersonalData,
    Sealer,
    is_sealed_snapshot,
    refuse_sealed_page,
    refuse_sealed_pages,
    refuse_sealed_rows,
)
from ..splits import StoreSplit, check_split, check_split_count
from ..validation import Validation, check_expected_version, check_size, check_version_bound

__all__ = ["Clock", "EventStore", "check_expected", "match_retry", "micros", "moment", "utc_now"]


class EventStore(abc.ABC):
    """An append-only log of streams with optimistic concurrency and idempotent appends."""

    #: URL scheme the backend answers to, e.g. ``"sqlite"``.
    scheme: str = ""
    #: A URL that ``open_store`` turns into another handle on the same data.
    url: str = ""

    def __init__(self, *, clock: Clock | None = None, payload_limit: int = MAX_PAYLOAD_BYTES) -> None:
        self.clock: Clock = clock or utc_now
        self._valid = Validation(payload_limit)
        self._sealer: Sealer | None = None

    @property
    def payload_limit(self) -> int:
        """The most bytes one event's encoded data and metadata may take together."""
        return self._valid.payload_limit

    @payload_limit.setter
    def payload_limit(self, limit: int) -> None:
        self._valid.payload_limit = limit

    # -- writing -------------------------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = Expect.ANY,
    ) -> AppendResult:
        """Append ``events`` atomically after checking ``expected_version``.

        Raises ``ConcurrencyError`` when the stream is elsewhere, unless every event id is
        already stored at the stream's matching versions: then the append is a retry of one
        that landed, nothing is written, and the original result is returned with
        ``duplicate=True``.
        """
        valid = self._valid
        stream_id = valid.stream_id(stream_id)
        expected = check_expected_version(expected_version)
        prepared = valid.new_events(events)
        if self._sealer is not None:
            prepared = self._seal(stream_id, prepared)
        return self._append(stream_id, prepared, expected, self._now())

    def append_prepared(
        self, stream_id: str, events: list[PreparedEvent], expected_version: ExpectedVersion = Expect.ANY
    ) -> AppendResult:
        """``append`` for events encoded already (``EventRegistry.prepare``): the same contract
        and errors, without walking payloads the registry's types guarantee to be valid JSON.
        The repository saves through it; ``events`` must be a list of ``PreparedEvent``."""
        valid = self._valid
        stream_id = valid.stream_id(stream_id)
        expected = check_expected_version(expected_version)
        prepared = valid.prepared(events)
        if self._sealer is not None:
            prepared = self._seal(stream_id, prepared)
        return self._append(stream_id, prepared, expected, self._now())

    def _seal(self, stream_id: str, events: list[PreparedEvent]) -> list[PreparedEvent]:
        assert self._sealer is not None
        sealed = self._sealer.seal_events(stream_id, events)
        if sealed is not events:  # sealing grows a payload: the limit holds for what is stored
            for event in sealed:
                check_size(event, self.payload_limit)
        return sealed

    def _now(self) -> datetime:
        if self.clock is utc_now:  # the default clock needs no check (a call less per append)
            return datetime.now(UTC)
        recorded_at = self.clock()
        if recorded_at.tzinfo is None:
            raise InvalidInputError("the store's clock returned a naive datetime")
        return recorded_at

    @abc.abstractmethod
    def _append(
        self,
        stream_id: str,
        events: list[PreparedEvent],
        expected: ExpectedVersion,
        recorded_at: datetime,
    ) -> AppendResult:
        """Store ``events`` (validated, encoded) atomically if the stream is at ``expected``;
        recognise a retry (``match_retry``); raise ``ConcurrencyError`` otherwise."""

    # -- reading -------------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        *,
        after: int = 0,
        upto: int | None = None,
        limit: int | None = None,
        reverse: bool = False,
        as_stored: bool = False,
    ) -> list[RecordedEvent]:
        """Events of one stream with ``after < version <= upto``, in version order (or the
        reverse), at most ``limit`` of them. A missing stream reads as empty. ``as_stored``
        leaves sealed personal fields sealed (for archives and copies, which must never hold
        them in the clear; ``open_personal`` opens such records later)."""
        stream_id = self._valid.stream_id(stream_id)
        after = check_version_bound("after", after, allow_none=False) or 0
        upto = check_version_bound("upto", upto)
        limit = check_version_bound("limit", limit)
        if limit == 0 or (upto is not None and upto <= after):
            return []
        stored = self._read_stream(stream_id, after, upto, limit, bool(reverse))
        if as_stored:
            return decode_stored_page(stored)
        if self._sealer is None:
            return decode_stored_page(refuse_sealed_page(stored))
        return self._sealer.open_page(stored, decode_stored_page(stored))

    @abc.abstractmethod
    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[StoredEvent]:
        """The stream's stored events with ``after < version <= upto`` in version order (or
        the reverse), at most ``limit``; bounds are checked already and never empty."""

    def read_stream_payloads(self, stream_id: str, *, after: int = 0, upto: int | None = None) -> list[PayloadRow]:
        """(version, event type, schema version, JSON data) of the stream's events with
        ``after < version <= upto``, in version order, payloads left as stored: what a replay
        needs to decode each payload straight into its event class (``Repository.load``)."""
        stream_id = self._valid.stream_id(stream_id)
        after = check_version_bound("after", after, allow_none=False) or 0
        upto = check_version_bound("upto", upto)
        if upto is not None and upto <= after:
            return []
        rows = self._read_stream_payloads(stream_id, after, upto)
        return refuse_sealed_rows(rows) if self._sealer is None else self._sealer.open_rows(stream_id, rows)

    def _read_stream_payloads(self, stream_id: str, after: int, upto: int | None) -> list[PayloadRow]:
        """The replay's columns of ``_read_stream``'s events. Backends that can select just
        these columns override it."""
        return [(s[1], s[4], s[5], s[6]) for s in self._read_stream(stream_id, after, upto, None, False)]

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version: the number of events ever appended (0 if none)."""
        return self._stream_version(self._valid.stream_id(stream_id))

    @abc.abstractmethod
    def _stream_version(self, stream_id: str) -> int: ...

    def read_all(
        self, *, after: int = 0, limit: int | None = None, page_size: int = 1000, as_stored: bool = False
    ) -> Iterator[RecordedEvent]:
        """The global log in commit order from ``position > after``; resumable by passing
        the last position seen. Read lazily in pages. ``as_stored`` leaves sealed personal
        fields sealed, as ``read_stream``'s does: for readers of positions, times and types
        only, which then need no key store."""
        if not as_stored:
            return decode_stored_pages(self.read_all_stored(after=after, limit=limit, page_size=page_size))
        after = check_version_bound("after", after, allow_none=False) or 0
        limit = check_version_bound("limit", limit)
        page_size = check_version_bound("page_size", page_size, allow_none=False) or 1000
        return decode_stored_pages(self._read_all(after, limit, page_size))

    def read_all_stored(
        self, *, after: int = 0, limit: int | None = None, page_size: int = 1000
    ) -> Iterator[list[StoredEvent]]:
        """``read_all``'s events as stored (payloads still JSON bytes), page by page: for a
        reader that decodes only what it uses (subscriptions hand these over as
        ``es_core.encoding.StoredRecord``; ``decode_stored`` makes a ``RecordedEvent``). On a
        protected store sealed fields are opened in the bytes, as ``read_all`` opens them;
        without its key store a page holding sealed fields raises ``KeyStoreError``."""
        after = check_version_bound("after", after, allow_none=False) or 0
        limit = check_version_bound("limit", limit)
        page_size = check_version_bound("page_size", page_size, allow_none=False) or 1000
        pages = self._read_all(after, limit, page_size)
        return refuse_sealed_pages(pages) if self._sealer is None else self._sealer.open_stored_pages(pages)

    def open_personal(self, records: Iterable[RecordedEvent]) -> Iterator[RecordedEvent]:
        """Records read ``as_stored`` (e.g. from an archive), with their sealed fields opened as
        a read would open them (``FORGOTTEN`` for a forgotten subject); ``KeyStoreError`` on a
        store without its key store."""
        if self._sealer is None:
            raise KeyStoreError("opening sealed records needs the store's key store (EventStore.protect)")
        return self._sealer.open_records(records)

    @abc.abstractmethod
    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[list[StoredEvent]]:
        """The global log from ``position > after`` in commit order, as pages of stored events
        (about ``page_size`` each), at most ``limit`` events in all, read lazily."""

    @abc.abstractmethod
    def head_position(self) -> int:
        """The position of the last committed event in the global log (0 if none)."""

    def settled_position(self) -> int:
        """The position up to which no earlier event can still appear in the global log.
        Equal to ``head_position`` on single-node backends that commit in order."""
        return self.head_position()

    @abc.abstractmethod
    def schema_census(self) -> dict[tuple[str, int], int]:
        """Counts of stored events per (event type, schema version)."""

    # -- partitioned reads (es_core.splits) ----------------------------------------------

    def split(self, count: int) -> list[StoreSplit]:
        """Plan about ``count`` splits of the store's streams, for reading in parallel: each
        stream in exactly one split, whole, up to the position the store had settled at now.
        Memory and SQLite plan at most one split per stream (and at least one); Cassandra
        about ``count``, and at least one per token range of the ring."""
        return self._split(check_split_count(count))

    @abc.abstractmethod
    def _split(self, count: int) -> list[StoreSplit]: ...

    def read_split(self, split: StoreSplit, *, page_size: int = 1000) -> Iterator[RecordedEvent]:
        """The events of one split's streams up to its plan's position: each stream whole and
        in version order, one stream after another. Read lazily, about ``page_size`` events at
        a time. A split planned on another store raises ``InvalidSplitError``."""
        split = check_split(split, self.split_origin)
        page_size = check_version_bound("page_size", page_size, allow_none=False) or 1000
        pages = self._read_split(split, page_size)
        opened = refuse_sealed_pages(pages) if self._sealer is None else self._sealer.open_stored_pages(pages)
        return decode_stored_pages(opened)

    @property
    @abc.abstractmethod
    def split_origin(self) -> str:
        """Names this store's data in the splits it plans (the same for every handle on it)."""

    @abc.abstractmethod
    def _read_split(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        """The split's stored events in pages (about ``page_size`` each), streams whole and in
        version order; the split is checked against this store already."""

    # -- snapshots -----------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot, *, sealed: bool = True) -> None:
        """Store a snapshot in the snapshot table, replacing one at the same version. On a
        protected store the state is sealed with the stream subject's key
        (``SubjectForgottenError`` once the subject is forgotten: nothing is written), unless
        ``sealed=False``: the caller vouches that the state holds no personal data (a forgotten
        subject's state, saved so that loads need not replay events retention removed)."""
        snapshot = self._check_snapshot(snapshot)
        self._save_snapshot(self._sealed_snapshot(snapshot) if sealed else snapshot)

    def save_snapshot_and_prune(self, snapshot: Snapshot, keep: int) -> None:
        """``save_snapshot``, then keep only the newest ``keep`` snapshots of its stream.
        Backends that can do both in one transaction override ``_save_snapshot_and_prune``."""
        keep = check_version_bound("keep", keep, allow_none=False) or 0
        self._save_snapshot_and_prune(self._sealed_snapshot(self._check_snapshot(snapshot)), keep)

    def _sealed_snapshot(self, snapshot: Snapshot) -> Snapshot:
        return snapshot if self._sealer is None else self._sealer.seal_snapshot(snapshot)

    def _save_snapshot_and_prune(self, snapshot: Snapshot, keep: int) -> None:
        self._save_snapshot(snapshot)
        self.prune_snapshots(snapshot.stream_id, keep)

    def _check_snapshot(self, snapshot: object) -> Snapshot:
        if not isinstance(snapshot, Snapshot):
            raise InvalidInputError(f"expected a Snapshot, not {type(snapshot).__name__}")
        self._valid.stream_id(snapshot.stream_id)
        if snapshot.version < 1:
            raise InvalidInputError("a snapshot must cover at least one event")
        if len(snapshot.state) > self.payload_limit:
            raise SnapshotError(f"snapshot state is over the payload limit of {self.payload_limit}")
        return snapshot

    @abc.abstractmethod
    def _save_snapshot(self, snapshot: Snapshot) -> None: ...

    def latest_snapshot(self, stream_id: str, *, upto: int | None = None) -> Snapshot | None:
        """The newest snapshot of the stream at or before version ``upto``. On a protected store a
        sealed snapshot whose subject is forgotten reads as None (loads replay the events)."""
        snapshot = self._latest_snapshot(self._valid.stream_id(stream_id), check_version_bound("upto", upto))
        if self._sealer is not None:
            return self._sealer.open_snapshot(snapshot)
        if is_sealed_snapshot(snapshot):
            raise SnapshotError(f"the snapshot of {stream_id!r} is sealed: open the store with its key store")
        return snapshot

    @abc.abstractmethod
    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None: ...

    def snapshot_versions(self, stream_id: str) -> list[int]:
        """Versions that have a snapshot, newest first."""
        return self._snapshot_versions(self._valid.stream_id(stream_id))

    @abc.abstractmethod
    def _snapshot_versions(self, stream_id: str) -> list[int]: ...

    def prune_snapshots(self, stream_id: str, keep: int) -> int:
        """Delete all but the newest ``keep`` snapshots; returns how many were deleted."""
        stream_id = self._valid.stream_id(stream_id)
        keep = check_version_bound("keep", keep, allow_none=False) or 0
        doomed = self._snapshot_versions(stream_id)[keep:]
        if doomed:
            self._delete_snapshots(stream_id, doomed)
        return len(doomed)

    @abc.abstractmethod
    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None: ...

    # -- retention -----------------------------------------------------------------------

    def truncate_stream(self, stream_id: str, before_version: int) -> int:
        """Delete the stream's events with ``version < before_version`` (retention after a
        snapshot). The latest event always stays, so the stream keeps its version.
        Returns how many events were deleted. Prefer ``es_core.retention``, which checks a
        snapshot covers them and can archive them first."""
        stream_id = self._valid.stream_id(stream_id)
        before = check_version_bound("before_version", before_version, allow_none=False) or 0
        current = self._stream_version(stream_id)
        if before > current:
            raise InvalidInputError(
                f"cannot truncate {stream_id!r} before version {before}: it is at {current}"
            )
        return self._truncate_stream(stream_id, before) if before > 1 else 0

    @abc.abstractmethod
    def _truncate_stream(self, stream_id: str, before_version: int) -> int: ...

    # -- personal data -------------------------------------------------------------------

    def protect(
        self,
        kek: KeyEncryptionKey,
        personal: PersonalData,
        *,
        scope: str = "default",
        previous: Sequence[KeyEncryptionKey] = (),
        table: KeyTable | None = None,
        initialise: bool = False,
    ) -> KeyStore:
        """Seal ``personal``'s fields with per-subject data keys wrapped by ``kek`` from now on,
        and open them on every read. Keys live in ``table`` (default: ``key_table()``, a table
        in this backend) under ``scope``. At start-up the key store must open with ``kek`` (or
        one of ``previous``); an empty key store is created only on an empty log, or with
        ``initialise=True`` for a log whose personal events predate protection: otherwise
        ``KeyStoreError`` (a lost key store is never answered with placeholders)."""
        if not isinstance(personal, PersonalData):
            raise InvalidInputError(f"expected PersonalData, not {type(personal).__name__}")
        keys = KeyStore(table if table is not None else self.key_table(), kek, scope=scope, previous=previous)
        keys.open(may_initialise=initialise or self.head_position() == 0)
        self._sealer = Sealer(personal, keys)
        return keys

    @property
    def key_store(self) -> KeyStore | None:
        """The key store attached by ``protect`` (None on an unprotected store)."""
        return None if self._sealer is None else self._sealer.keys

    @property
    def personal_data(self) -> PersonalData | None:
        """The personal fields ``protect`` was given (None on an unprotected store)."""
        return None if self._sealer is None else self._sealer.personal

    def has_key_store(self, scope: str = "default") -> bool:
        """Whether this backend's key table holds a key store under ``scope``: the store was
        protected, and reading its personal fields needs ``protect`` with its key-encryption
        key. Answers without the key, on any handle, and writes nothing: a backend whose key
        tables were never created answers False without creating them."""
        if not isinstance(scope, str) or not scope:
            raise InvalidInputError("a key store scope is a non-empty str")
        return self._key_tables_exist() and self.key_table().read_check(scope) is not None

    def _key_tables_exist(self) -> bool:
        """Whether this backend's key tables exist already (asked before ``key_table`` would
        create them: a read-only command must not change the schema)."""
        return True

    def key_table(self) -> KeyTable:
        """This backend's own table of wrapped data keys (created on first use)."""
        raise NotImplementedError(f"{type(self).__name__} has no key table: pass one to protect()")

    def forget(self, subject: str) -> None:
        """Destroy ``subject``'s data key: from now on their personal fields read as
        ``es_core.personal.FORGOTTEN`` everywhere, their sealed snapshots are ignored, and new
        personal fields of theirs are refused. Events, versions and positions are unchanged.
        ``UnknownSubjectError`` if they have no key, ``AlreadyForgottenError`` the second time."""
        if self._sealer is None:
            raise InvalidInputError("forget needs a protected store (EventStore.protect)")
        if not isinstance(subject, str) or not subject:
            raise InvalidInputError("a subject is a non-empty str")
        self._sealer.keys.forget(subject, micros(self._now()))

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Idempotent."""

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_expected(
    stream_id: str, expected: ExpectedVersion, current: int
) -> ConcurrencyError | None:
    """The conflict an append would raise, or None when it may proceed."""
    if expected is Expect.ANY:
        return None
    if expected is Expect.NO_STREAM:
        ok = current == 0
    elif expected is Expect.STREAM_EXISTS:
        ok = current > 0
    else:
        ok = current == expected
    return None if ok else ConcurrencyError(stream_id, expected, current)


def match_retry(
    stream_id: str,
    events: list[PreparedEvent],
    stored: Sequence[tuple[object, str, int]],
) -> AppendResult:
    """Decide whether an append whose first event id is already stored is a retry.

    ``stored`` lists (event_id, stream_id, version) for the append's ids that are stored, in
    the append's order. A retry means every id is stored, in this stream, at consecutive
    versions; anything else is refused rather than half-applied."""
    if len(stored) != len(events):
        missing = len(events) - len(stored)
        raise DuplicateEventIdError(
            stored[0][0], f"{missing} of the append's {len(events)} events are new, so it is not a retry"
        )
    first = stored[0][2]
    for i, (event_id, sid, version) in enumerate(stored):
        if sid != stream_id:
            raise DuplicateEventIdError(event_id, f"it belongs to stream {sid!r}")
        if version != first + i:
            raise DuplicateEventIdError(event_id, "the stored events are in another order")
    return AppendResult(
        stream_id=stream_id, first_version=first, last_version=first + len(events) - 1, duplicate=True
    )
