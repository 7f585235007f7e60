"""A read model per backend for the subscription contract: it records every effect a handler
made, so a test can count effects per event (exactly once on memory and SQLite; on Cassandra
each delivery adds a row, so a repeat would show)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from es_core import EventStore
from es_core.subscriptions import Checkpoints, Delivery, MemoryCheckpoints, SQLiteCheckpoints

Key = tuple[str, int]  # (stream id, version)


class EffectModel:
    """``apply`` is the handler; ``counts`` how many times each event's effect was applied."""

    def __init__(self, checkpoints: Checkpoints, name: str) -> None:
        self.checkpoints, self.name = checkpoints, name
        self.fail_on: set[uuid.UUID] = set()  # events whose handler raises (poison)
        self.calls = 0

    def apply(self, d: Delivery) -> None:
        self.calls += 1
        if d.event_id in self.fail_on:
            raise RuntimeError(f"cannot handle {d.record.stream_id} v{d.record.version}")
        self._write(d)

    def _write(self, d: Delivery) -> None:
        raise NotImplementedError

    def reset(self, tx: Any, position: int) -> None:
        raise NotImplementedError

    def counts(self) -> Counter[Key]:
        raise NotImplementedError


class MemoryEffects(EffectModel):
    def __init__(self, checkpoints: Checkpoints, name: str) -> None:
        super().__init__(checkpoints, name)
        self.effects: Counter[Key] = Counter()
        self.positions: dict[Key, int] = {}

    def _write(self, d: Delivery) -> None:
        key = (d.record.stream_id, d.record.version)
        self.effects[key] += 1
        self.positions[key] = d.position

    def reset(self, tx: Any, position: int) -> None:
        for key in [k for k, p in self.positions.items() if p > position]:
            del self.effects[key], self.positions[key]

    def counts(self) -> Counter[Key]:
        assert isinstance(self.checkpoints, MemoryCheckpoints)
        with self.checkpoints.lock:
            return Counter(self.effects)


class SQLiteEffects(EffectModel):
    def __init__(self, checkpoints: Checkpoints, name: str) -> None:
        super().__init__(checkpoints, name)
        assert isinstance(checkpoints, SQLiteCheckpoints)
        checkpoints.db.execute(
            "CREATE TABLE IF NOT EXISTS effects (sub TEXT, stream_id TEXT, version INTEGER, position INTEGER,"
            " n INTEGER, PRIMARY KEY (sub, stream_id, version))"
        )

    def _write(self, d: Delivery) -> None:
        d.tx.execute(
            "INSERT INTO effects VALUES (?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1",
            (self.name, d.record.stream_id, d.record.version, d.position),
        )

    def reset(self, tx: Any, position: int) -> None:
        tx.execute("DELETE FROM effects WHERE sub = ? AND position > ?", (self.name, position))

    def counts(self) -> Counter[Key]:
        assert isinstance(self.checkpoints, SQLiteCheckpoints)
        with self.checkpoints.reader() as db:
            rows = db.execute("SELECT stream_id, version, n FROM effects WHERE sub = ?", (self.name,)).fetchall()
        return Counter({(s, v): n for s, v, n in rows})


_CASSANDRA_TABLE = threading.Lock()


class CassandraEffects(EffectModel):
    """One row per delivery: at least once, so a repeat would add a second row."""

    def __init__(self, checkpoints: Checkpoints, name: str, store: EventStore) -> None:
        super().__init__(checkpoints, name)
        self.session, self.keyspace = store.session, store.keyspace  # type: ignore[attr-defined]
        with _CASSANDRA_TABLE:
            self.session.execute(
                f"CREATE TABLE IF NOT EXISTS {self.keyspace}.sub_effects (sub text, stream_id text, version int,"
                " position bigint, delivery uuid, PRIMARY KEY ((sub), stream_id, version, delivery))"
            )

    def _write(self, d: Delivery) -> None:
        d.tx.execute(
            f"INSERT INTO {self.keyspace}.sub_effects (sub, stream_id, version, position, delivery)"
            " VALUES (%s, %s, %s, %s, %s)",
            (self.name, d.record.stream_id, d.record.version, d.position, uuid.uuid4()),
        )

    def reset(self, tx: Any, position: int) -> None:
        for stream_id, version, pos, delivery in self._rows():
            if pos > position:
                tx.execute(
                    f"DELETE FROM {self.keyspace}.sub_effects WHERE sub = %s AND stream_id = %s AND version = %s"
                    " AND delivery = %s",
                    (self.name, stream_id, version, delivery),
                )

    def _rows(self) -> list[tuple[str, int, int, uuid.UUID]]:
        return list(self.session.execute(
            f"SELECT stream_id, version, position, delivery FROM {self.keyspace}.sub_effects WHERE sub = %s",
            (self.name,),
        ))

    def counts(self) -> Counter[Key]:
        return Counter((s, v) for s, v, _p, _d in self._rows())
