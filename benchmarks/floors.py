"""The floors: the least work any event store must do for the same writes and reads.

SQLite floor: plain ``sqlite3`` with the same durability as es_core (WAL, ``synchronous`` as
the store under test, FULL by default), one transaction per event, and a unique
(stream, version) key, which is what makes an append with an expected version safe. It stores
the same columns es_core stores (id, type, schema version, payload, metadata, time) but keeps
no other index and runs no validation. Payloads are encoded and decoded with msgspec, the
fastest JSON codec at hand, so the floor is as low as it honestly gets. Its reads run on
es_core's own database file, so they read the same pages.

Cassandra floor: the raw driver running one conditional insert per event and one
partition read per load, at the same concurrency as the store under test (one session,
requests issued one after another), against its own table in the same keyspace.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

_encode = msgspec.json.encode
_decode = msgspec.json.decode

FLOOR_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    UNIQUE (stream_id, version)
);
"""
_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at)"
    " VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
)
_EMPTY = b"{}"


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    return db


def _now_micros() -> int:
    return time.time_ns() // 1000


def _event_id() -> bytes:
    """Time-ordered random ids, as es_core's repository makes them (see ``_ID_KEY``)."""
    return (time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10)


_ID_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);"


class SQLiteWriteFloor:
    """Plain sqlite3 writes: encode the payload, then one transaction per append.

    ``unique_event_id=True`` adds a unique key on the event id: the floor of a store that, like
    es_core, recognises a retried append by its event ids. That third B-tree costs one more page
    in the WAL on every commit, so it is reported beside the plain floor, not instead of it."""

    def __init__(self, path: Path, *, synchronous: str = "full", unique_event_id: bool = False) -> None:
        self.path = path
        self.db = _connect(path, synchronous)
        self.db.executescript(FLOOR_SCHEMA + (_ID_KEY if unique_event_id else ""))

    def append(self, stream_id: str, version: int, event_type: str, data: dict[str, Any]) -> None:
        """One event in its own transaction; the unique key refuses a second writer's version."""
        db = self.db
        row = (stream_id, version, _event_id(), event_type, _encode(data), _EMPTY, _now_micros())
        db.execute("BEGIN")
        try:
            db.execute(_INSERT, row)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def append_batch(self, stream_id: str, first_version: int, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several events of one stream in one transaction."""
        at = _now_micros()
        rows = [
            (stream_id, first_version + i, _event_id(), event_type, _encode(data), _EMPTY, at)
            for i, (event_type, data) in enumerate(events)
        ]
        db = self.db
        db.execute("BEGIN")
        try:
            db.executemany(_INSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def settings(self) -> dict[str, str]:
        return _pragmas(self.db)

    def close(self) -> None:
        self.db.close()


class SQLiteReadFloor:
    """Plain sqlite3 reads with JSON decode, on es_core's database file."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def load(self, stream_id: str) -> list[tuple[int, str, Any]]:
        """A whole stream, payloads decoded, in version order."""
        rows = self.db.execute(
            "SELECT version, event_type, data FROM events WHERE stream_id = ? ORDER BY version", (stream_id,)
        ).fetchall()
        return [(v, t, _decode(d)) for v, t, d in rows]

    def load_with_snapshot(self, stream_id: str) -> tuple[Any, list[tuple[int, str, Any]]]:
        """The latest snapshot's decoded state and the decoded events after it."""
        row = self.db.execute(
            "SELECT version, state FROM snapshots WHERE stream_id = ? ORDER BY version DESC LIMIT 1", (stream_id,)
        ).fetchone()
        after, state = (row[0], _decode(row[1])) if row else (0, None)
        rows = self.db.execute(
            "SELECT version, event_type, data FROM events WHERE stream_id = ? AND version > ? ORDER BY version",
            (stream_id, after),
        ).fetchall()
        return state, [(v, t, _decode(d)) for v, t, d in rows]

    def read_all(self, page_size: int = 1000) -> Iterator[tuple[int, str, Any]]:
        """The global log in position order, every payload and metadata decoded, paged."""
        after = 0
        db = self.db
        while True:
            rows = db.execute(
                "SELECT position, stream_id, version, event_id, event_type, schema_version, data, metadata,"
                " recorded_at FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (after, page_size),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                _decode(row[7])
                yield row[0], row[4], _decode(row[6])
            after = rows[-1][0]

    def close(self) -> None:
        self.db.close()


def _pragmas(db: sqlite3.Connection) -> dict[str, str]:
    journal = db.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = db.execute("PRAGMA synchronous").fetchone()[0]
    return {"journal_mode": str(journal).upper(), "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
        synchronous, str(synchronous))}


def sqlite_settings(db: sqlite3.Connection) -> dict[str, str]:
    """Journal mode and synchronous level a connection really runs with."""
    return _pragmas(db)


# -- Cassandra ---------------------------------------------------------------------------------

CASSANDRA_FLOOR_TABLE = "bench_floor_events"


class CassandraFloor:
    """The raw driver doing what an event store must on Cassandra: a conditional insert per
    event (so a second writer of the same version loses), and a partition read per load.

    Takes a connected ``cassandra.cluster.Session`` whose keyspace is set; creates its own
    table there. Requests run one after another, as es_core's store issues them."""

    def __init__(self, session: Any, *, table: str = CASSANDRA_FLOOR_TABLE) -> None:
        self.session = session
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (stream_id text, version bigint, event_id uuid, "
            "event_type text, data blob, recorded_at timestamp, PRIMARY KEY ((stream_id), version))"
        )
        self._insert = session.prepare(
            f"INSERT INTO {table} (stream_id, version, event_id, event_type, data, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, toTimestamp(now())) IF NOT EXISTS"
        )
        self._select = session.prepare(f"SELECT version, event_type, data FROM {table} WHERE stream_id = ?")

    def append(self, stream_id: str, version: int, event_type: str, data: dict[str, Any]) -> None:
        import uuid

        result = self.session.execute(self._insert, (stream_id, version, uuid.uuid4(), event_type, _encode(data)))
        if not result.was_applied:
            raise RuntimeError(f"floor: {stream_id} v{version} exists")

    def append_batch(self, stream_id: str, first_version: int, events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several events of one stream: one conditional batch (one partition, one Paxos round)."""
        import uuid

        from cassandra.query import BatchStatement

        batch = BatchStatement()
        for i, (event_type, data) in enumerate(events):
            batch.add(self._insert, (stream_id, first_version + i, uuid.uuid4(), event_type, _encode(data)))
        if not self.session.execute(batch).was_applied:
            raise RuntimeError(f"floor: {stream_id} v{first_version}.. exists")

    def load(self, stream_id: str) -> list[tuple[int, str, Any]]:
        rows = self.session.execute(self._select, (stream_id,))
        return [(r[0], r[1], _decode(r[2])) for r in rows]  # by position: the row factory is the session's


def cassandra_floor(session: Any) -> CassandraFloor:
    """The hook the runner calls with a session when the store under test is Cassandra."""
    return CassandraFloor(session)


