"""Snapshots in the Cassandra store: one partition per stream, newest first (``LIMIT 1`` finds the
latest), written on their own, never in an append's conditional batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import Snapshot
from .base import micros, moment
from .cassandra_statements import MAX_VERSION


class Snapshots:
    def __init__(self, live: Callable[[], Any], prepare: Callable[[str], Any]) -> None:
        self._live = live
        self._q = prepare

    def save(self, snapshot: Snapshot) -> None:
        self._live().execute(
            self._q(
                "INSERT INTO {ks}.snapshots (stream_id, version, state_type, state_schema_version, state, taken_at)"
                " VALUES (?, ?, ?, ?, ?, ?)"
            ),
            (
                snapshot.stream_id,
                snapshot.version,
                snapshot.state_type,
                snapshot.state_schema_version,
                bytes(snapshot.state),
                micros(snapshot.taken_at),
            ),
        )

    def latest(self, stream_id: str, upto: int | None) -> Snapshot | None:
        row = (
            self._live()
            .execute(
                self._q(
                    "SELECT version, state_type, state_schema_version, state, taken_at FROM {ks}.snapshots"
                    " WHERE stream_id = ? AND version <= ? LIMIT 1"
                ),
                (stream_id, MAX_VERSION if upto is None else upto),
            )
            .one()
        )
        if row is None:
            return None
        return Snapshot(
            stream_id=stream_id,
            version=row[0],
            state_type=row[1],
            state_schema_version=row[2],
            state=bytes(row[3]),
            taken_at=moment(row[4]),
        )

    def versions(self, stream_id: str) -> list[int]:
        rows = self._live().execute(self._q("SELECT version FROM {ks}.snapshots WHERE stream_id = ?"), (stream_id,))
        return [r[0] for r in rows]

    def delete(self, stream_id: str, versions: list[int]) -> None:
        self._live().execute(
            self._q("DELETE FROM {ks}.snapshots WHERE stream_id = ? AND version IN ?"), (stream_id, versions)
        )
