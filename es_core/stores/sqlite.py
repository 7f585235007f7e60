"""The embedded default: one SQLite file, WAL journal, durable commits (``synchronous=FULL``).

Appends run in ``BEGIN IMMEDIATE`` transactions, so SQLite's single writer lock orders them:
the global position (the rowid) therefore grows in commit order and the log has no holes that
can fill later. Safe across threads (one lock per store object) and processes (file locks).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from ..errors import (
    InvalidInputError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ..events import AppendResult, ExpectedVersion, RecordedEvent, Snapshot
from ..limits import PreparedEvent
from .base import EventStore, check_expected, match_retry

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
"""

_COLUMNS = "stream_id, version, position, event_id, event_type, schema_version, data, metadata, recorded_at"
_decode = msgspec.json.decode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _moment(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def _row_to_event(row: tuple) -> RecordedEvent:  # type: ignore[type-arg]
    return RecordedEvent(
        stream_id=row[0],
        version=row[1],
        position=row[2],
        event_id=uuid.UUID(bytes=row[3]),
        event_type=row[4],
        schema_version=row[5],
        data=_decode(row[6]),
        metadata=_decode(row[7]),
        recorded_at=_moment(row[8]),
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
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if synchronous not in self.SYNCHRONOUS:
            raise InvalidInputError(f"synchronous must be one of {self.SYNCHRONOUS}, not {synchronous!r}")
        self.synchronous = synchronous
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"  # an absolute path gives the four-slash form
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        with _translated():
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a transaction takes
            # the write lock before it reads the stream's version (no upgrade deadlocks).
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            # full (default): an acknowledged append survives power loss. normal: survives a crash
            # of the process, may lose the last commits on power loss; for bulk simulations.
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._db.executescript(SCHEMA)
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- writing -------------------------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        at = _micros(recorded_at)
        with self._lock, _translated():
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                current = db.execute(
                    "SELECT MAX(version) FROM events WHERE stream_id = ?", (stream_id,)
                ).fetchone()[0] or 0
                if events and db.execute(
                    "SELECT 1 FROM events WHERE event_id = ?", (events[0].event_id.bytes,)
                ).fetchone():
                    db.execute("ROLLBACK")
                    return self._retry(stream_id, events)
                conflict = check_expected(stream_id, expected, current)
                if conflict:
                    raise conflict
                try:
                    db.executemany(
                        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version,"
                        " data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (stream_id, current + i, e.event_id.bytes, e.event_type, e.schema_version,
                             e.data, e.metadata, at)
                            for i, e in enumerate(events, start=1)
                        ],
                    )
                except sqlite3.IntegrityError:
                    # a later event id of this batch is stored already: not a clean retry
                    db.execute("ROLLBACK")
                    return self._retry(stream_id, events)
                last_position = db.execute("SELECT last_insert_rowid()").fetchone()[0] if events else None
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

    def _retry(self, stream_id: str, events: list[PreparedEvent]) -> AppendResult:
        ids = [e.event_id.bytes for e in events]
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f"SELECT event_id, stream_id, version, position, recorded_at FROM events WHERE event_id IN ({marks})",
            ids,
        ).fetchall()
        by_id = {r[0]: r for r in rows}
        found = [(uuid.UUID(bytes=i), by_id[i][1], by_id[i][2]) for i in ids if i in by_id]
        result = match_retry(stream_id, events, found)
        last = by_id[ids[-1]]
        return msgspec.structs.replace(result, last_position=last[3], recorded_at=_moment(last[4]))

    # -- reading -------------------------------------------------------------------------

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version > ?"
        params: list[object] = [stream_id, after]
        if upto is not None:
            sql += " AND version <= ?"
            params.append(upto)
        sql += " ORDER BY version DESC" if reverse else " ORDER BY version"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock, _translated():
            rows = self._db.execute(sql, params).fetchall()
        return [_row_to_event(r) for r in rows]

    def _stream_version(self, stream_id: str) -> int:
        with self._lock, _translated():
            row = self._db.execute("SELECT MAX(version) FROM events WHERE stream_id = ?", (stream_id,)).fetchone()
        return row[0] or 0

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[RecordedEvent]:
        produced = 0
        while limit is None or produced < limit:
            size = page_size if limit is None else min(page_size, limit - produced)
            with self._lock, _translated():
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
                    (after, size),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _row_to_event(row)
            produced += len(rows)
            after = rows[-1][2]

    def head_position(self) -> int:
        with self._lock, _translated():
            return self._db.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()[0]

    def schema_census(self) -> dict[tuple[str, int], int]:
        with self._lock, _translated():
            rows = self._db.execute(
                "SELECT event_type, schema_version, COUNT(*) FROM events GROUP BY event_type, schema_version"
            ).fetchall()
        return {(t, v): n for t, v, n in rows}

    # -- snapshots -----------------------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock, _translated():
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                (snapshot.stream_id, snapshot.version, snapshot.state_type, snapshot.state_schema_version,
                 bytes(snapshot.state), _micros(snapshot.taken_at)),
            )

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        with self._lock, _translated():
            row = self._db.execute(
                "SELECT stream_id, version, state_type, state_schema_version, state, taken_at FROM snapshots"
                " WHERE stream_id = ? AND version <= ? ORDER BY version DESC LIMIT 1",
                (stream_id, upto if upto is not None else 2**62),
            ).fetchone()
        if row is None:
            return None
        return Snapshot(
            stream_id=row[0], version=row[1], state_type=row[2], state_schema_version=row[3],
            state=bytes(row[4]), taken_at=_moment(row[5]),
        )

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        with self._lock, _translated():
            rows = self._db.execute(
                "SELECT version FROM snapshots WHERE stream_id = ? ORDER BY version DESC", (stream_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        with self._lock, _translated():
            self._db.executemany(
                "DELETE FROM snapshots WHERE stream_id = ? AND version = ?", [(stream_id, v) for v in versions]
            )

    # -- retention -----------------------------------------------------------------------

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        with self._lock, _translated():
            cursor = self._db.execute(
                "DELETE FROM events WHERE stream_id = ? AND version < ?", (stream_id, before_version)
            )
        return cursor.rowcount

    # -- maintenance ---------------------------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's own ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        with self._lock, _translated():
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


class _translated:
    """The one boundary where ``sqlite3`` errors become the project's ``StoreError`` tree."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return False
        raise translate_sqlite_error(exc) from exc


def translate_sqlite_error(exc: sqlite3.Error) -> StoreError:
    message = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return StoreUnavailableError(f"SQLite database is busy: {message}")
    if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in message or "not a database" in message):
        return StoreCorruptionError(f"SQLite database is damaged: {message}")
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in message:
        return StoreError("the store is closed")
    return StoreError(f"SQLite failed: {message}")
