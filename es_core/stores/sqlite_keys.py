"""The SQLite store's key table: wrapped data keys in the same file as the events, so a backup of
the file carries them (and the key-encryption key, kept outside, is what protects them)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from ..keys import KeyRow, KeyTable

SCHEMA = """
CREATE TABLE IF NOT EXISTS key_store_checks (
    scope   TEXT PRIMARY KEY,
    kek_id  TEXT NOT NULL,
    wrapped BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_keys (
    scope        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    kek_id       TEXT NOT NULL,
    wrapped      BLOB,             -- NULL once forgotten: the key is gone for good
    forgotten_at INTEGER,          -- microseconds since the Unix epoch, UTC
    PRIMARY KEY (scope, subject)
) WITHOUT ROWID;
"""


class SQLiteKeyTable(KeyTable):
    """Rows in ``data_keys`` and ``key_store_checks``; each write commits on its own (autocommit),
    and ``secure_delete`` overwrites a destroyed key's bytes in the file rather than leaving
    them in a free page."""

    def __init__(
        self, db: sqlite3.Connection, lock: threading.RLock, translated: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._db, self._lock, self._translated = db, lock, translated
        with self._lock, self._translated():
            self._db.executescript(SCHEMA)
            self._db.execute("PRAGMA secure_delete = ON")

    def _run(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock, self._translated():
            return self._db.execute(sql, args).fetchall()

    def read_check(self, scope: str) -> tuple[str, bytes] | None:
        rows = self._run("SELECT kek_id, wrapped FROM key_store_checks WHERE scope = ?", (scope,))
        return (str(rows[0][0]), bytes(rows[0][1])) if rows else None  # type: ignore[call-overload]

    def write_check(self, scope: str, kek_id: str, wrapped: bytes) -> None:
        self._run("INSERT OR REPLACE INTO key_store_checks VALUES (?, ?, ?)", (scope, kek_id, wrapped))

    def read(self, scope: str, subject: str) -> KeyRow | None:
        rows = self._run(
            "SELECT kek_id, wrapped, forgotten_at FROM data_keys WHERE scope = ? AND subject = ?", (scope, subject)
        )
        return KeyRow(*rows[0]) if rows else None  # type: ignore[arg-type]

    def insert(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> KeyRow:
        self._run("INSERT OR IGNORE INTO data_keys VALUES (?, ?, ?, ?, NULL)", (scope, subject, kek_id, wrapped))
        row = self.read(scope, subject)
        assert row is not None  # inserted, or another writer's row was there first
        return row

    def destroy(self, scope: str, subject: str, at: int) -> None:
        self._run(
            "UPDATE data_keys SET wrapped = NULL, forgotten_at = ? WHERE scope = ? AND subject = ?",
            (at, scope, subject),
        )

    def rewrap(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> None:
        self._run(
            "UPDATE data_keys SET kek_id = ?, wrapped = ? WHERE scope = ? AND subject = ? AND wrapped IS NOT NULL",
            (kek_id, wrapped, scope, subject),
        )

    def rows(self, scope: str) -> Iterator[tuple[str, KeyRow]]:
        found = self._run("SELECT subject, kek_id, wrapped, forgotten_at FROM data_keys WHERE scope = ?", (scope,))
        return iter([(str(r[0]), KeyRow(*r[1:])) for r in found])  # type: ignore[arg-type]
