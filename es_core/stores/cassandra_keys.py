"""The Cassandra store's key table: wrapped data keys in the store's keyspace, created on first use
(``EventStore.protect``), outside the event layout so stores without personal data never have it.

A subject's key is created with a lightweight transaction (``IF NOT EXISTS``): two writers that
race to seal a new member's first personal fields agree on one key. Forgetting overwrites the
wrapped key with null; Cassandra keeps the overwritten cell on disk until compaction after
``gc_grace_seconds`` (it is wrapped by the key-encryption key, which never enters the cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..errors import StoreError
from ..keys import KeyRow, KeyTable
from .cassandra_errors import TRANSLATED

TABLES = (
    """CREATE TABLE IF NOT EXISTS {ks}.key_store_checks (
    scope   text PRIMARY KEY,
    kek_id  text,
    wrapped blob
)""",
    """CREATE TABLE IF NOT EXISTS {ks}.data_keys (
    scope        text,
    subject      text,
    kek_id       text,
    wrapped      blob,     -- null once forgotten
    forgotten_at bigint,   -- microseconds since the Unix epoch, UTC
    PRIMARY KEY ((scope, subject))
)""",
)


class CassandraKeyTable(KeyTable):
    def __init__(self, session: Any, keyspace: str, live: Callable[[], Any], prepare: Callable[[str], Any]) -> None:
        for ddl in TABLES:
            session.execute(ddl.format(ks=keyspace), timeout=120)
            if not session.cluster.control_connection.wait_for_schema_agreement(wait_time=60):
                raise StoreError("Cassandra nodes did not agree on the schema after creating the key tables")
        self._live, self._q = live, prepare

    def _run(self, cql: str, args: tuple[object, ...]) -> Any:
        with TRANSLATED:
            return self._live().execute(self._q(cql), args)

    def read_check(self, scope: str) -> tuple[str, bytes] | None:
        row = self._run("SELECT kek_id, wrapped FROM {ks}.key_store_checks WHERE scope = ?", (scope,)).one()
        return (row[0], bytes(row[1])) if row is not None else None

    def write_check(self, scope: str, kek_id: str, wrapped: bytes) -> None:
        self._run(
            "INSERT INTO {ks}.key_store_checks (scope, kek_id, wrapped) VALUES (?, ?, ?)", (scope, kek_id, wrapped)
        )

    def read(self, scope: str, subject: str) -> KeyRow | None:
        row = self._run(
            "SELECT kek_id, wrapped, forgotten_at FROM {ks}.data_keys WHERE scope = ? AND subject = ?", (scope, subject)
        ).one()
        return None if row is None else KeyRow(row[0], None if row[1] is None else bytes(row[1]), row[2])

    def insert(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> KeyRow:
        self._run(
            "INSERT INTO {ks}.data_keys (scope, subject, kek_id, wrapped) VALUES (?, ?, ?, ?) IF NOT EXISTS",
            (scope, subject, kek_id, wrapped),
        )
        row = self.read(scope, subject)
        assert row is not None  # ours, or the row of the writer that won
        return row

    def destroy(self, scope: str, subject: str, at: int) -> None:
        self._run(
            "UPDATE {ks}.data_keys SET wrapped = null, forgotten_at = ? WHERE scope = ? AND subject = ?",
            (at, scope, subject),
        )

    def rewrap(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> None:
        self._run(
            "UPDATE {ks}.data_keys SET kek_id = ?, wrapped = ? WHERE scope = ? AND subject = ? IF forgotten_at = null",
            (kek_id, wrapped, scope, subject),
        )

    def rows(self, scope: str) -> Iterator[tuple[str, KeyRow]]:
        """A scan of the table (rotation and the census are rare, administrative reads)."""
        with TRANSLATED:
            statement = self._q("SELECT scope, subject, kek_id, wrapped, forgotten_at FROM {ks}.data_keys").bind(())
            statement.fetch_size = 5000
            found = [
                (r[1], KeyRow(r[2], None if r[3] is None else bytes(r[3]), r[4]))
                for r in self._live().execute(statement)
                if r[0] == scope
            ]
        return iter(found)
