"""The benchmark's request counter on a real node: every request the session sends is counted,
and exactly the conditional ones (single statements and batches) as Paxos rounds."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from cassandra.query import BatchStatement, BatchType

from benchmarks.cassandra_counts import Counts, RequestCounter
from benchmarks.floors import CASSANDRA_FLOOR_TABLE, CassandraFloor
from es_core import Expect, NewEvent
from es_core.stores.cassandra import CassandraStore

pytestmark = pytest.mark.cassandra


def test_requests_and_paxos_rounds_are_counted_by_kind(feed_store: CassandraStore, sid: Callable[..., str]) -> None:
    session = feed_store.session
    floor = CassandraFloor(session)
    insert = session.prepare(
        f"INSERT INTO {CASSANDRA_FLOOR_TABLE} (stream_id, version, event_id, event_type, data) VALUES (?, ?, ?, ?, ?)"
        " IF NOT EXISTS"
    )
    counter = RequestCounter(session)
    try:
        before = counter.counts()
        floor.append(sid("floor"), 1, "Tick", {})  # INSERT ... IF NOT EXISTS
        floor.load(sid("floor"))  # a plain SELECT
        session.execute("SELECT release_version FROM system.local")  # a simple statement
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for version in (2, 3):
            batch.add(insert, (sid("floor"), version, uuid.uuid4(), "Tick", b"{}"))
        session.execute(batch)  # one conditional batch: one Paxos round
        assert counter.counts() - before == Counts(requests=4, paxos=2)
    finally:
        counter.close()
    floor.load(sid("floor"))
    assert counter.counts() - before == Counts(requests=4, paxos=2)  # closed: no longer counting


def test_an_append_is_one_paxos_round(feed_store: CassandraStore, sid: Callable[..., str]) -> None:
    stream = sid("append")
    feed_store.append(stream, [NewEvent(event_type="Tick", data={})], Expect.NO_STREAM)
    counter = RequestCounter(feed_store.session)
    try:
        before = counter.counts()
        events = [NewEvent(event_type="Tick", data={"i": i}) for i in range(3)]
        feed_store.append(stream, events, 1)  # three events: one conditional batch
        spent = counter.counts() - before
    finally:
        counter.close()
    assert spent.paxos == 1 and spent.requests >= 1  # plus the feed's announcement, once per second
