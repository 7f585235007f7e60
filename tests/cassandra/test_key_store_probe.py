"""On Cassandra, asking whether a keyspace holds a key store changes no schema (a read-only
command, such as ``python -m downloads whatif``, must not create tables, and a role that may only
read would be refused if it tried)."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import NewEvent, open_store
from es_core.stores.cassandra import CassandraStore

from ..cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra


def test_asking_a_never_protected_keyspace_creates_no_key_tables() -> None:
    keyspace = f"es_probe_{uuid.uuid4().hex[:8]}"
    url = cassandra_url_or_skip(keyspace=keyspace)
    try:
        with open_store(url) as store:
            store.append("member-1", [NewEvent(event_type="Joined", data={})])
            assert not store.has_key_store()
            found = store.session.execute(  # the store's own session, reading the schema only
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
            )
            names = {row[0] for row in found}
        assert "events" in names and not {"key_store_checks", "data_keys"} & names
    finally:
        CassandraStore.drop(url)
