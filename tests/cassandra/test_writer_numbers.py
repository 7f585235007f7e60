"""Writer numbers on a real node (finding: claims leaked until their TTL, and 4,096 short-lived
processes could exhaust them): ``close()`` releases the number, a claim finds any free number by
reading the table, a claim fails with a clear error only when every number is held, and a new
holder's positions start above the previous holder's reservation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from cassandra.concurrent import execute_concurrent

from es_core import NewEvent, StoreUnavailableError, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_feed import position_us
from es_core.stores.cassandra_writers import WRITERS
from tests.cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


@pytest.fixture
def admin() -> Iterator[CassandraStore]:
    """A keyspace of its own: these tests fill and empty the writer table."""
    store = open_store(cassandra_url_or_skip("es_test_writers"))
    assert isinstance(store, CassandraStore)
    store.session.execute("TRUNCATE es_test_writers.feed_writers")
    yield store
    store.session.execute("TRUNCATE es_test_writers.feed_writers")
    store.close()


def row(store: CassandraStore, writer: int) -> tuple[object, int | None]:
    found = store.session.execute("SELECT owner, reserved FROM feed_writers WHERE writer = %s", (writer,)).one()
    return (found[0], found[1]) if found else (None, None)


def hold_all(store: CassandraStore, until_us: int) -> None:
    insert = store.session.prepare("INSERT INTO feed_writers (writer, owner, reserved) VALUES (?, ?, ?)")
    calls = [(insert, (w, uuid.uuid4(), until_us)) for w in range(WRITERS)]
    execute_concurrent(store.session, calls, concurrency=128, raise_on_first_error=True)


def test_close_releases_the_writer_number_with_the_last_position_used(admin: CassandraStore, sid: Sid) -> None:
    store = open_store(admin.url)
    assert isinstance(store, CassandraStore)
    result = store.append(sid("release"), [NewEvent(event_type="Tick", data={})])
    number = store._feed_writer.writer
    assert number is not None and row(admin, number)[0] == store._feed_writer._numbers.owner
    store.close()
    owner, reserved = row(admin, number)
    assert owner is None and reserved is not None
    assert result.last_position is not None and reserved >= position_us(result.last_position)
    reader = open_store(admin.url)  # a handle that only reads never claims a number
    reader.read_stream(sid("release"))
    reader.settled_position(wait=False)
    assert isinstance(reader, CassandraStore) and reader._feed_writer.writer is None
    reader.close()


def test_claims_fail_only_when_every_number_is_held_and_find_the_last_free_one(admin: CassandraStore, sid: Sid) -> None:
    now_us = time.time_ns() // 1000
    hold_all(admin, now_us + 3_600_000_000)
    s = sid("exhausted")
    store = open_store(admin.url)
    try:
        with pytest.raises(StoreUnavailableError, match=f"all {WRITERS} feed writer numbers are held"):
            store.append(s, [NewEvent(event_type="Tick", data={})])
        assert store.stream_version(s) == 0  # nothing was written
        released_at = now_us + 2_000_000  # the last holder used positions up to 2 s from now
        admin.session.execute("UPDATE feed_writers SET owner = null, reserved = %s WHERE writer = 77", (released_at,))
        result = store.append(s, [NewEvent(event_type="Tick", data={})])
        assert isinstance(store, CassandraStore) and store._feed_writer.writer == 77
        assert result.last_position is not None and position_us(result.last_position) > released_at
    finally:
        store.close()
    # a holder whose reservation ran out (a crashed process) is taken over
    admin.session.execute("UPDATE feed_writers SET reserved = %s WHERE writer = 78", (now_us - 1_000_000,))
    with open_store(admin.url) as other:
        assert other.append(sid("taken-over"), [NewEvent(event_type="Tick", data={})]).last_version == 1
        assert isinstance(other, CassandraStore) and other._feed_writer.writer in (77, 78)
