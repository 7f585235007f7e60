"""The embedded default: one SQLite file, WAL journal, durable commits (``synchronous=FULL``).

Snapshot writes are the exception: they commit without an fsync of their own and become
durable with the next append (see ``_write_snapshots``), so snapshotting stays cheap.

Every append holds SQLite's single writer lock from its first read to its commit (a
``BEGIN IMMEDIATE`` transaction, or one autocommit INSERT for the common one-event command), so
the global position (the rowid) grows in commit order and the log has no holes that can fill
later. Safe across threads (one lock per store object) and processes (file locks).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

import msgspec

from ..errors import (
    InvalidInputError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ..events import AppendResult, ExpectedVersion, PayloadRow, PreparedEvent, Snapshot, StoredEvent
from ..ids import uuid_from_bytes
from ..keys import KeyTable
from ..limits import MAX_PAYLOAD_BYTES
from ..splits import StoreSplit, plan, stream_ranges
from .base import Clock, EventStore, check_expected, match_retry
from .base import micros as _micros
from .base import moment as _moment
from .sqlite_keys import SQLiteKeyTable

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,   -- rowid: commit order (the last row is never deleted)
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,      -- JSON
    metadata       BLOB    NOT NULL,      -- JSON
    recorded_at    INTEGER NOT NULL,      -- microseconds since the Unix epoch, UTC
    UNIQUE (stream_id, version)
);
CREATE TABLE IF NOT EXISTS snapshots (
    stream_id            TEXT    NOT NULL,
    version              INTEGER NOT NULL,
    state_type           TEXT    NOT NULL,
    state_schema_version INTEGER NOT NULL,
    state                BLOB    NOT NULL,
    taken_at             INTEGER NOT NULL,
    PRIMARY KEY (stream_id, version)
) WITHOUT ROWID;
-- The file itself refuses a gap in a stream: an event at version n > 1 needs version n - 1.
-- With the unique (stream, version) key this makes one plain INSERT of version expected + 1
-- an exact optimistic-concurrency check, with no read before it (see SQLiteStore._append).
CREATE TRIGGER IF NOT EXISTS events_without_gaps BEFORE INSERT ON events
WHEN NEW.version > 1 AND NOT EXISTS
    (SELECT 1 FROM events WHERE stream_id = NEW.stream_id AND version = NEW.version - 1)
BEGIN
    SELECT RAISE(ABORT, 'version gap');
END;
"""

PAGE_SIZE = 2048
"""Bytes per database page for new files (``page_size=`` chooses another power of two from 512
to 65536). A one-event commit writes one page of each B-tree it touches (the log, the (stream,
version) key, the event-id key) to the WAL and fsyncs it; events are small (~170 bytes of JSON
in the downloads workload), so 2 KiB pages halve that write against SQLite's 4 KiB default: about
10-15% more durable appends per second on the benchmark machine. The price is on long
sequential reads: replaying a stream whose events were written together (one batch) reads twice
as many pages, about 20% slower without snapshots. Services that mostly replay whole streams,
rather than snapshot + tail, may prefer ``page_size=4096``."""

WAL_CHECKPOINT_BYTES = 16 * 1024 * 1024
"""Checkpoint the WAL into the database file once it holds this much (SQLite's default is
about 4 MiB). Successive appends rewrite the same hot index pages, and a checkpoint copies
each page once however often it changed, and fsyncs: checkpointing a quarter as often made
bulk simulations (``synchronous=normal``) about 20% faster and durable appends 1-2% faster on
the benchmark machine. The cost: a WAL file up to this size beside the database."""

# selected in StoredEvent's field order, so a row is a StoredEvent as sqlite3 returns it
_COLUMNS = "stream_id, version, position, event_id, event_type, schema_version, data, metadata, recorded_at"
_SELECT_PAGE = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
_SELECT_VERSION = "SELECT MAX(version) FROM events WHERE stream_id = ?"
_SELECT_ID = "SELECT 1 FROM events WHERE event_id = ?"
_PRUNE_SNAPSHOTS = (
    "DELETE FROM snapshots WHERE stream_id = ?1 AND version NOT IN"
    " (SELECT version FROM snapshots WHERE stream_id = ?1 ORDER BY version DESC LIMIT ?2)"
)
_SELECT_PAYLOADS = (
    "SELECT version, event_type, schema_version, data FROM events WHERE stream_id = ? AND version > ? ORDER BY version"
)
_SELECT_PAYLOADS_UPTO = (
    "SELECT version, event_type, schema_version, data FROM events"
    " WHERE stream_id = ? AND version > ? AND version <= ? ORDER BY version"
)
_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

def _row(stream_id: str, version: int, event: PreparedEvent, at: int) -> tuple[object, ...]:
    """An event's values in ``_INSERT``'s order."""
    return (stream_id, version, event.event_id.int.to_bytes(16), event.event_type, event.schema_version, event.data,
            event.metadata, at)


_SAVE_SNAPSHOT = "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)"


def _snapshot_row(snapshot: Snapshot) -> tuple[object, ...]:
    return (
        snapshot.stream_id,
        snapshot.version,
        snapshot.state_type,
        snapshot.state_schema_version,
        bytes(snapshot.state),
        _micros(snapshot.taken_at),
    )


class SQLiteStore(EventStore):
    scheme = "sqlite"

    SYNCHRONOUS = ("full", "normal")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "full",
        page_size: int = PAGE_SIZE,
        clock: Clock | None = None,
        payload_limit: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__(clock=clock, payload_limit=payload_limit)
        if synchronous not in self.SYNCHRONOUS:
            raise InvalidInputError(f"synchronous must be one of {self.SYNCHRONOUS}, not {synchronous!r}")
        if type(page_size) is not int or not 512 <= page_size <= 65536 or page_size & (page_size - 1):
            raise InvalidInputError(f"page_size must be a power of two from 512 to 65536, not {page_size!r}")
        self.synchronous = synchronous
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"  # an absolute path gives the four-slash form
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        with _TRANSLATED:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a transaction takes
            # the write lock before it reads the stream's version (no upgrade deadlocks).
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute(f"PRAGMA page_size = {page_size}")  # takes effect only on a new file
            self._db.execute("PRAGMA journal_mode = WAL")
            page_size = self._db.execute("PRAGMA page_size").fetchone()[0]  # an older file keeps its own
            self._db.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_BYTES // page_size}")
            # full (default): an acknowledged append survives power loss. normal: survives a crash
            # of the process, may lose the last commits on power loss; for bulk simulations.
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._db.executescript(SCHEMA)
        self._closed = False
        self._key_table: SQLiteKeyTable | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _key_tables_exist(self) -> bool:
        if self._key_table is not None:
            return True
        with self._lock, _TRANSLATED:
            found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_store_checks'")
            return found.fetchone() is not None

    def key_table(self) -> KeyTable:
        """Wrapped data keys in this file (``es_core.stores.sqlite_keys``)."""
        if self._key_table is None:
            self._key_table = SQLiteKeyTable(self._db, self._lock, lambda: _TRANSLATED)
        return self._key_table

    # -- writing -------------------------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        if len(events) == 1 and type(expected) is int:
            # The common command: one event at an exact expected version, as one autocommit
            # statement (SQLite takes the write lock for it, so commit order still = rowid order).
            # The unique key refuses it if the stream is past `expected`, the gap trigger if it
            # is short of it, the event-id key if it is a retry; the general path says which.
            row = _row(stream_id, expected + 1, events[0], _micros(recorded_at))
            with self._lock:
                try:
                    position = self._db.execute(_INSERT, row).lastrowid
                except sqlite3.IntegrityError:
                    pass
                except sqlite3.Error as exc:  # translated inline: no context manager on the hot path
                    raise translate_sqlite_error(exc) from exc
                else:
                    return AppendResult(
                        stream_id=stream_id,
                        first_version=expected + 1,
                        last_version=expected + 1,
                        last_position=position,
                        recorded_at=recorded_at,
                    )
        elif len(events) > 1 and type(expected) is int:
            # A batch at an exact expected version: the same keys and trigger check its first row
            # (and the rows after it follow on), so it needs no read of the stream's version first
            with self._lock, _TRANSLATED:
                last_position = self._insert_batch(stream_id, events, expected, _micros(recorded_at))
            if last_position is not None:
                return AppendResult(
                    stream_id=stream_id,
                    first_version=expected + 1,
                    last_version=expected + len(events),
                    last_position=last_position,
                    recorded_at=recorded_at,
                )
        with self._lock, _TRANSLATED:
            return self._append_in_transaction(stream_id, events, expected, recorded_at)

    def _insert_batch(self, stream_id: str, events: list[PreparedEvent], expected: int, at: int) -> int | None:
        """Insert the events at versions ``expected + 1...`` in one transaction: the last one's
        position, or None (and nothing written) when a key or the gap trigger refuses a row."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            position = self._insert(stream_id, events, expected, at)
            db.execute("COMMIT")
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            return None
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return position

    def _append_in_transaction(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        db, at = self._db, _micros(recorded_at)
        db.execute("BEGIN IMMEDIATE")
        try:
            current = db.execute(_SELECT_VERSION, (stream_id,)).fetchone()[0] or 0
            conflict = check_expected(stream_id, expected, current)
            if conflict:
                # a retry of an append that landed finds the stream moved on: recognise it
                if events and db.execute(_SELECT_ID, (events[0].event_id.bytes,)).fetchone():
                    db.execute("ROLLBACK")
                    return self._retry(stream_id, events)
                raise conflict
            try:
                last_position = self._insert(stream_id, events, current, at)
            except sqlite3.IntegrityError:
                # The (stream, version) key cannot clash under the write lock, so an event id is
                # stored already: a retry of an append that landed (its result is returned), or a
                # partial overlap (refused). Checking here, not before, spares every append a read.
                db.execute("ROLLBACK")
                return self._retry(stream_id, events)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return AppendResult(
            stream_id=stream_id,
            first_version=current + 1,
            last_version=current + len(events),
            last_position=last_position,
            recorded_at=recorded_at if events else None,
        )

    def _insert(self, stream_id: str, events: list[PreparedEvent], after: int, at: int) -> int | None:
        """Insert the events at versions ``after + 1...`` (inside a transaction); the last one's
        position, None for no events. ``sqlite3.IntegrityError`` when a key or the trigger refuses."""
        rows = [_row(stream_id, after + i, e, at) for i, e in enumerate(events, start=1)]
        if len(rows) == 1:  # one statement, and its rowid for free
            return self._db.execute(_INSERT, rows[0]).lastrowid
        self._db.executemany(_INSERT, rows)
        position: int | None = self._db.execute("SELECT last_insert_rowid()").fetchone()[0] if rows else None
        return position

    def _retry(self, stream_id: str, events: list[PreparedEvent]) -> AppendResult:
        ids = [e.event_id.bytes for e in events]
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT event_id, stream_id, version, position, recorded_at FROM events WHERE event_id IN ({marks})",
            ids,
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        found = [(uuid_from_bytes(i), by_id[i][1], by_id[i][2]) for i in ids if i in by_id]
        result = match_retry(stream_id, events, found)
        last = by_id[ids[-1]]
        return msgspec.structs.replace(result, last_position=last[3], recorded_at=_moment(last[4]))

    # -- reading -------------------------------------------------------------------------

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[StoredEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version > ?"
        params: list[object] = [stream_id, after]
        if upto is not None:
            sql += " AND version <= ?"
            params.append(upto)
        sql += " ORDER BY version DESC" if reverse else " ORDER BY version"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock, _TRANSLATED:
            rows: list[StoredEvent] = self._db.execute(sql, params).fetchall()  # in StoredEvent's order: _COLUMNS
        return rows

    def _read_stream_payloads(self, stream_id: str, after: int, upto: int | None) -> list[PayloadRow]:
        with self._lock, _TRANSLATED:
            if upto is None:
                return self._db.execute(_SELECT_PAYLOADS, (stream_id, after)).fetchall()
            return self._db.execute(_SELECT_PAYLOADS_UPTO, (stream_id, after, upto)).fetchall()

    def _stream_version(self, stream_id: str) -> int:
        with self._lock, _TRANSLATED:
            row = self._db.execute(_SELECT_VERSION, (stream_id,)).fetchone()
        return row[0] or 0

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[list[StoredEvent]]:
        produced = 0
        while limit is None or produced < limit:
            size = page_size if limit is None else min(page_size, limit - produced)
            with self._lock, _TRANSLATED:
                rows = self._db.execute(_SELECT_PAGE, (after, size)).fetchall()
            if not rows:
                return
            yield rows
            produced += len(rows)
            after = rows[-1][2]

    def head_position(self) -> int:
        with self._lock, _TRANSLATED:
            head: int = self._db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
        return head

    # -- partitioned reads ---------------------------------------------------------------

    @property
    def split_origin(self) -> str:
        return f"sqlite:///{self.path.resolve()}"

    def _split(self, count: int) -> list[StoreSplit]:
        with self._lock, _TRANSLATED:
            upto = self._db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]
            sizes = self._db.execute(
                "SELECT stream_id, COUNT(*) FROM events GROUP BY stream_id ORDER BY stream_id"
            ).fetchall()
        # the origin opens the same file from any working directory
        return plan(self.split_origin, self.split_origin, upto, [(r,) for r in stream_ranges(sizes, count)])

    def _read_split(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        """One statement per key range on a read-only connection of its own: splits read in
        parallel (threads or processes) share no lock, and the read sees one snapshot."""
        with _TRANSLATED:
            reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            for low, high in split.ranges:
                # `+position`: filter on it, never scan by it (the (stream_id, version) key gives the order)
                sql = f"SELECT {_COLUMNS} FROM events WHERE +position <= ?"
                params: list[object] = [split.upto]
                if low is not None:
                    sql += " AND stream_id > ?"
                    params.append(low)
                if high is not None:
                    sql += " AND stream_id <= ?"
                    params.append(high)
                with _TRANSLATED:
                    cursor = reader.execute(sql + " ORDER BY stream_id, version", params)
                while True:
                    with _TRANSLATED:
                        rows = cursor.fetchmany(page_size)
                    if not rows:
                        break
                    yield rows  # in StoredEvent's field order: _COLUMNS
        finally:
            reader.close()

    def schema_census(self) -> dict[tuple[str, int], int]:
        with self._lock, _TRANSLATED:
            rows = self._db.execute(
                "SELECT event_type, schema_version, COUNT(*) FROM events GROUP BY event_type, schema_version"
            ).fetchall()
        return {(t, v): n for t, v, n in rows}

    # -- snapshots -----------------------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        self._write_snapshots(_SAVE_SNAPSHOT, [_snapshot_row(snapshot)])

    def _save_snapshot_and_prune(self, snapshot: Snapshot, keep: int) -> None:
        # one transaction: one commit and usually one page written instead of two of each
        self._write_snapshots(_SAVE_SNAPSHOT, [_snapshot_row(snapshot)], prune=(snapshot.stream_id, keep))

    def _write_snapshots(self, sql: str, rows: list[tuple[object, ...]], prune: tuple[str, int] | None = None) -> None:
        """Snapshot writes commit without an fsync of their own (``synchronous=NORMAL`` for
        their commit only): a snapshot is an optimisation, derived from events already durable,
        and the next append's fsync of the WAL makes it durable too. Power lost before then
        costs a snapshot, never an event, and a load falls back to the previous snapshot or a
        replay. With its own fsync, snapshotting would add a second durable commit to the
        append path. (One connection, not a second one at NORMAL: a write from another
        connection would empty this one's page cache.)"""
        with self._lock, _TRANSLATED:
            db = self._db
            relax = self.synchronous == "full"
            if relax:
                db.execute("PRAGMA synchronous = NORMAL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(sql, rows)
                    if prune is not None:  # all but the newest `keep` of the stream's snapshots
                        db.execute(_PRUNE_SNAPSHOTS, prune)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            finally:
                if relax:
                    db.execute("PRAGMA synchronous = FULL")

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        with self._lock, _TRANSLATED:
            row = self._db.execute(
                "SELECT stream_id, version, state_type, state_schema_version, state, taken_at FROM snapshots"
                " WHERE stream_id = ? AND version <= ? ORDER BY version DESC LIMIT 1",
                (stream_id, upto if upto is not None else 2**62),
            ).fetchone()
        if row is None:
            return None
        return Snapshot(
            stream_id=row[0],
            version=row[1],
            state_type=row[2],
            state_schema_version=row[3],
            state=bytes(row[4]),
            taken_at=_moment(row[5]),
        )

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        with self._lock, _TRANSLATED:
            rows = self._db.execute(
                "SELECT version FROM snapshots WHERE stream_id = ? ORDER BY version DESC", (stream_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        self._write_snapshots(
            "DELETE FROM snapshots WHERE stream_id = ? AND version = ?", [(stream_id, v) for v in versions]
        )

    # -- retention -----------------------------------------------------------------------

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        with self._lock, _TRANSLATED:
            cursor = self._db.execute(
                "DELETE FROM events WHERE stream_id = ? AND version < ?", (stream_id, before_version)
            )
        return cursor.rowcount

    # -- maintenance ---------------------------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        with self._lock, _TRANSLATED:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    @staticmethod
    def remove_files(path: str | os.PathLike[str]) -> None:
        """Delete a database file and the files SQLite keeps beside it (write-ahead log, shared
        memory, rollback journal); missing ones are fine. Close every store on it first."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{os.fspath(path)}{suffix}").unlink(missing_ok=True)


class _translated:
    """The one boundary where ``sqlite3`` errors become the project's ``StoreError`` tree."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:  # never swallows: an sqlite3 error leaves translated, anything else as it is
        if exc is None or not isinstance(exc, sqlite3.Error):
            return False
        raise translate_sqlite_error(exc) from exc


_TRANSLATED = _translated()  # stateless, so one instance serves every call


def translate_sqlite_error(exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return StoreUnavailableError(f"SQLite database is busy: {message}")
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in message or "not a database" in message):
        return StoreCorruptionError(f"SQLite database is damaged: {message}")
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in message:
        return StoreError("the store is closed")
    return StoreError(f"SQLite failed: {message}")
