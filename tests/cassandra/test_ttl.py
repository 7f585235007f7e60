"""A table TTL would silently reset streams (issue 14, finding 8): the static ``head`` expires,
the stream reads as empty and ``NO_STREAM`` writes version 1 again. The store refuses to open a
keyspace whose tables expire rows it relies on, naming the table and the fix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import NewEvent, StoreLayoutError, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_schema import TABLES, schema_agreed
from tests.cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra


@pytest.fixture(scope="module")
def scratch() -> Iterator[tuple[str, Any]]:
    """A keyspace of its own (its tables get altered), with one stream in it."""
    url = cassandra_url_or_skip(f"es_test_ttl_{uuid.uuid4().hex[:8]}")
    store = open_store(url)
    store.append("member-1", [NewEvent(event_type="Tick", data={})])
    yield url, store
    store.close()
    CassandraStore.drop(url)


def set_ttl(store: Any, table: str, seconds: int) -> None:
    store.session.execute(f"ALTER TABLE {store.keyspace}.{table} WITH default_time_to_live = {seconds}", timeout=60)
    schema_agreed(store.session)


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_table_with_a_default_ttl_is_refused_with_the_fix(scratch: tuple[str, Any], table: str) -> None:
    url, store = scratch
    set_ttl(store, table, 86400)
    try:
        with pytest.raises(StoreLayoutError) as info:
            open_store(url)
        message = str(info.value)
        assert f"{store.keyspace}.{table} has default_time_to_live = 86400" in message
        assert f"ALTER TABLE {store.keyspace}.{table} WITH default_time_to_live = 0" in message
    finally:
        set_ttl(store, table, 0)
    reopened = open_store(url)  # with the TTL removed the keyspace opens again, its stream intact
    try:
        assert reopened.stream_version("member-1") == 1
    finally:
        reopened.close()

