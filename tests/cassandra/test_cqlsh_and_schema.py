"""Inspecting the store by hand with ``cqlsh`` (the queries ``docs/cassandra.md`` shows), and
creating a keyspace from several handles at once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import NewEvent, Snapshot, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_feed import shard_of
from tests.cassandra_node import cassandra_url_or_skip, node_address

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


def cqlsh(statement: str) -> str:
    program = Path(sys.executable).with_name("cqlsh")
    if not program.exists():
        found = shutil.which("cqlsh")
        if found is None:
            pytest.skip("cqlsh is not installed (pip install cqlsh)")
        program = Path(found)
    host, port = node_address()
    done = subprocess.run(
        [str(program), host, str(port), "-e", statement], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_cqlsh_reads_a_stream_its_heads_its_snapshots_and_the_feed_index(layout: CassandraStore, sid: Sid) -> None:
    s = sid("cqlsh")
    layout.append(s, [NewEvent(event_type="DeviceRegistered", data={"device_id": f"d{i}"}) for i in range(1, 4)])
    layout.append(s, [NewEvent(event_type="LicenseAcquired", data={"title_id": "t1"})], 3)
    layout.save_snapshot(Snapshot(stream_id=s, version=4, state_type="member", state_schema_version=1,
                                  state=b'{"devices":3}', taken_at=layout.clock()))  # fmt: skip
    ks = layout.keyspace
    events = cqlsh(
        f"SELECT version, event_type, blobAsText(data) AS data FROM {ks}.events WHERE stream_id = '{s}' AND bucket = 0;"
    )
    assert "DeviceRegistered" in events and '{"device_id":"d3"}' in events and "(4 rows)" in events
    heads = cqlsh(
        f"SELECT DISTINCT stream_id, bucket, head, fence FROM {ks}.events WHERE stream_id = '{s}' AND bucket IN (0, 1);"
    )
    assert s in heads and "(1 rows)" in heads
    snapshots = cqlsh(
        f"SELECT version, state_type, blobAsText(state) AS state FROM {ks}.snapshots WHERE stream_id = '{s}';"
    )
    assert '{"devices":3}' in snapshots
    position = layout.read_stream(s)[-1].position
    slot, shard = position >> 32, shard_of(s, layout.feed_shards)
    announced = cqlsh(
        f"SELECT stream_id, bucket, first_version FROM {ks}.feed_announcements WHERE shard = {shard} AND slot = {slot};"
    )
    assert s in announced
    described = cqlsh(f"DESCRIBE TABLE {ks}.events;")
    assert "PRIMARY KEY ((stream_id, bucket), version)" in described and "head bigint static" in described


def test_first_use_from_several_handles_at_once_creates_one_layout() -> None:
    keyspace = f"es_test_first_use_{uuid.uuid4().hex[:8]}"
    url = cassandra_url_or_skip(keyspace, bucket_width="500")
    opened: list[CassandraStore] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            store = open_store(url)
            assert isinstance(store, CassandraStore)
            opened.append(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert errors == [] and len(opened) == 3
        assert {store.bucket_width for store in opened} == {500}
        opened[0].append("m-1", [NewEvent(event_type="Tick", data={})])
        assert opened[2].stream_version("m-1") == 1
    finally:
        for store in opened:
            store.close()
        CassandraStore.drop(url)
