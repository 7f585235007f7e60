"""Checkpoints in a SQLite file: the read model's tables and the position share one transaction.

The file may be the event store's own (``SQLiteCheckpoints.beside(store)``) or a separate one.
Each page is one ``BEGIN IMMEDIATE`` transaction on this object's own connection: it checks the
subscription's row (lease, position, status), lets the handlers write their rows through
``delivery.tx`` (that connection), stores the new position, and commits. A crash anywhere
before the commit leaves neither the rows nor the position; after it, both. So every effect
happens exactly once.

Sharing the store's file: SQLite has one writer at a time, so while a page is open the store's
appends wait (up to its ``busy_timeout_ms``, 30 s by default) and the page waits for them. The
page reads its events *before* it begins, so the lock is held only while handlers write: keep
pages to hundreds of events, not hundreds of thousands. WAL lets readers of either go on
meanwhile. A separate file avoids the contention entirely; both are durable (``synchronous=FULL``
unless asked otherwise).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InvalidSubscriptionError
from ..stores.base import EventStore
from ..stores.sqlite import SQLiteStore, translate_sqlite_error
from .checkpoints import Checkpoints, Clock, Page, check_page_state
from .records import ParkedEvent, SkippedEvent, SubscriptionState

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    name        TEXT    PRIMARY KEY,
    position    INTEGER NOT NULL DEFAULT 0,   -- every event at or before it has had its effect
    status      TEXT    NOT NULL DEFAULT 'active',
    owner       TEXT,                          -- the running copy, if any
    lease_until REAL    NOT NULL DEFAULT 0,    -- seconds since the epoch
    reset_to    INTEGER,                       -- an operator's reset, applied at the next start
    last_error  TEXT    NOT NULL DEFAULT '',
    updated_at  REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS subscription_parked (
    subscription TEXT    NOT NULL,
    event_id     BLOB    NOT NULL,
    position     INTEGER NOT NULL,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    event_type   TEXT    NOT NULL,
    error        TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    parked_at    REAL    NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
CREATE TABLE IF NOT EXISTS subscription_skips (
    subscription TEXT NOT NULL,
    event_id     BLOB NOT NULL,
    reason       TEXT NOT NULL,
    skipped_at   REAL NOT NULL,
    PRIMARY KEY (subscription, event_id)
);
CREATE TABLE IF NOT EXISTS subscription_aliases (
    alias TEXT PRIMARY KEY,
    name  TEXT NOT NULL
);
"""

_ROW = "SELECT name, position, status, owner, lease_until, reset_to, last_error, updated_at FROM subscriptions"


class SQLiteCheckpoints(Checkpoints):
    kind = "sqlite"
    rolls_back = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 30_000,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        if synchronous not in SQLiteStore.SYNCHRONOUS:
            raise InvalidSubscriptionError(f"synchronous must be one of {SQLiteStore.SYNCHRONOUS}, not {synchronous!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._closed = False
        self._busy_timeout_ms = int(busy_timeout_ms)
        with _translated():
            self.db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
            )
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self.db.executescript(SCHEMA)

    @classmethod
    def beside(cls, store: EventStore, **options: Any) -> SQLiteCheckpoints:
        """Checkpoints (and read-model tables) in the SQLite store's own file."""
        if not isinstance(store, SQLiteStore):
            raise InvalidSubscriptionError(f"SQLiteCheckpoints.beside needs a SQLiteStore, not {type(store).__name__}")
        return cls(store.path, **options)

    def __repr__(self) -> str:
        return f"SQLiteCheckpoints({str(self.path)!r})"

    # -- rows ------------------------------------------------------------------------------

    def create(self, name: str) -> SubscriptionState:
        self._write("INSERT OR IGNORE INTO subscriptions (name, updated_at) VALUES (?, ?)", (name, self.clock()))
        return self.get(name)

    def find(self, name: str) -> SubscriptionState | None:
        with self._lock, _translated():
            row = self.db.execute(f"{_ROW} WHERE name = ?", (name,)).fetchone()
        return SubscriptionState(*row) if row else None

    def names(self) -> list[str]:
        with self._lock, _translated():
            return [r[0] for r in self.db.execute("SELECT name FROM subscriptions ORDER BY name")]

    def _swap_owner(self, name: str, expected: str | None, owner: str | None, lease_until: float) -> bool:
        return self._write(
            "UPDATE subscriptions SET owner = ?, lease_until = ? WHERE name = ? AND owner IS ?",
            (owner, lease_until, name, expected),
        ) == 1

    def _set(self, name: str, **fields: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in fields)  # columns come from the layer, not users
        self._write(
            f"UPDATE subscriptions SET {assignments}, updated_at = ? WHERE name = ?",
            (*fields.values(), self.clock(), name),
        )

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._lock, _translated():
            return self.db.execute(sql, params).rowcount

    # -- pages -----------------------------------------------------------------------------

    @contextmanager
    def page(self, name: str, owner: str, start: int, lease_until: float) -> Iterator[Page]:
        with self._lock, _translated():
            db = self.db
            self._begin()
            try:
                row = db.execute(f"{_ROW} WHERE name = ?", (name,)).fetchone()
                page = Page(name, owner, start, lease_until, handle=db)
                check_page_state(SubscriptionState(*row) if row else None, page)
                yield page
                self._commit_page(page)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, retried every 0.5-4 ms while another connection writes.

        SQLite's own busy handler backs off to sleeps of 25-100 ms, which is what a live
        subscription beside a busy store would then wait per page; retrying here keeps its lag
        to the length of the other writer's transaction."""
        db = self.db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            deadline, pause = time.monotonic() + self._busy_timeout_ms / 1000, 0.0005
            while True:
                try:
                    db.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not ("locked" in str(exc) or "busy" in str(exc)) or time.monotonic() > deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, 0.004)
        finally:
            db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")

    def _commit_page(self, page: Page) -> None:
        db = self.db
        if page.reset_applied:
            db.execute(
                "DELETE FROM subscription_parked WHERE subscription = ? AND position > ?", (page.name, page.position)
            )
        if page.parked:
            db.executemany(
                "INSERT OR REPLACE INTO subscription_parked VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.subscription, p.event_id.bytes, p.position, p.stream_id, p.version, p.event_type, p.error,
                  p.attempts, p.parked_at) for p in page.parked],
            )
        if page.resolved:
            db.executemany(
                "DELETE FROM subscription_parked WHERE subscription = ? AND event_id = ?",
                [(page.name, event_id.bytes) for event_id, _how in page.resolved],
            )
        reset = ", reset_to = NULL" if page.reset_applied else ""
        db.execute(
            f"UPDATE subscriptions SET position = ?, lease_until = ?, updated_at = ?{reset} WHERE name = ?",
            (page.position, page.lease_until, self.clock(), page.name),
        )

    # -- parked, skipped, aliases ----------------------------------------------------------

    def parked(self, name: str) -> list[ParkedEvent]:
        with self._lock, _translated():
            rows = self.db.execute(
                "SELECT * FROM subscription_parked WHERE subscription = ? ORDER BY position", (name,)
            ).fetchall()
        return [ParkedEvent(r[0], uuid.UUID(bytes=r[1]), *r[2:]) for r in rows]

    def skipped(self, name: str) -> list[SkippedEvent]:
        with self._lock, _translated():
            rows = self.db.execute(
                "SELECT * FROM subscription_skips WHERE subscription = ? ORDER BY skipped_at", (name,)
            ).fetchall()
        return [SkippedEvent(r[0], uuid.UUID(bytes=r[1]), r[2], r[3]) for r in rows]

    def _add_skip(self, skip: SkippedEvent) -> None:
        with self._lock, _translated():
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT OR REPLACE INTO subscription_skips VALUES (?, ?, ?, ?)",
                    (skip.subscription, skip.event_id.bytes, skip.reason, skip.skipped_at),
                )
                db.execute(
                    "DELETE FROM subscription_parked WHERE subscription = ? AND event_id = ?",
                    (skip.subscription, skip.event_id.bytes),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def aliases(self) -> dict[str, str]:
        with self._lock, _translated():
            return dict(self.db.execute("SELECT alias, name FROM subscription_aliases ORDER BY alias").fetchall())

    def _set_alias(self, alias: str, name: str) -> None:
        self._write("INSERT OR REPLACE INTO subscription_aliases VALUES (?, ?)", (alias, name))

    # -- readers ---------------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A connection in one read transaction: the read model, positions and aliases it sees
        belong to one commit (WAL readers never wait for the writer)."""
        with _translated():
            db = sqlite3.connect(self.path, isolation_level=None)
        try:
            with _translated():
                db.execute("BEGIN")
                yield db
                db.execute("COMMIT")
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self.db.close()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise translate_sqlite_error(exc) from exc
