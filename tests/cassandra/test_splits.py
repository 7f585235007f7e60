"""Partitioned reads on a real node with buckets of 10 events: a stream spanning several
partitions is read whole, once, by the split holding its bucket 0 (the contract suite covers
the rest on every backend), and each range is scanned on a replica that owns it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from cassandra.metadata import Murmur3Token

from es_core import Expect, NewEvent
from es_core.stores.cassandra import CassandraStore

from .conftest import LAYOUT_WIDTH

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


def evs(start: int, count: int) -> list[NewEvent]:
    return [NewEvent(event_type="Tick", data={"n": n}) for n in range(start, start + count)]


def grow(store: CassandraStore, stream_id: str, sizes: list[int]) -> None:
    version = 0
    for size in sizes:
        store.append(stream_id, evs(version + 1, size), version or Expect.NO_STREAM)
        version += size


@pytest.mark.parametrize("count", [1, 3, 12])
def test_a_stream_over_several_partitions_is_read_whole_once(layout: CassandraStore, sid: Sid, count: int) -> None:
    long, overflowing, short = sid("long"), sid("overflow"), sid("short")
    grow(layout, long, [4] * 9)  # 36 events over buckets 0..3
    grow(layout, overflowing, [8, 15, 2])  # the second append overflows bucket 0 into versions 9..23
    grow(layout, short, [3])
    assert len(layout.partitions(long)) == 4 and len(layout.partitions(overflowing)) == 2
    runs: Counter[str] = Counter()
    read: dict[str, list[int]] = {}
    for split in layout.split(count):
        previous = None
        for e in layout.read_split(split):
            if e.stream_id != previous:
                runs[e.stream_id] += 1
                previous = e.stream_id
            if e.stream_id in (long, overflowing, short):  # the keyspace holds other tests' streams too
                read.setdefault(e.stream_id, []).append(e.data["n"])
    assert max(runs.values()) == 1  # every stream in one run of one split
    assert read[long] == list(range(1, 37))
    assert read[overflowing] == list(range(1, 26))
    assert read[short] == [1, 2, 3]


def test_a_stream_truncated_past_bucket_zero_is_still_read(layout: CassandraStore, sid: Sid) -> None:
    s = sid("cut")
    grow(layout, s, [5] * 5)  # 25 events, buckets 0..2
    layout.truncate_stream(s, 2 * LAYOUT_WIDTH + 3)  # bucket 0 and 1 keep only their statics
    read = [e.version for split in layout.split(4) for e in layout.read_split(split) if e.stream_id == s]
    assert read == [e.version for e in layout.read_stream(s)] == [23, 24, 25]


def test_each_range_is_scanned_on_a_replica_that_owns_it(layout: CassandraStore, monkeypatch: Any) -> None:
    hosts: list[tuple[int, Any]] = []
    session = layout.session
    real = session.execute

    def spy(statement: Any, *args: Any, host: Any = None, **kwargs: Any) -> Any:
        if "token(stream_id, bucket)" in str(getattr(statement, "prepared_statement", statement).query_string):
            hosts.append((statement.values, host))
        return real(statement, *args, host=host, **kwargs)

    monkeypatch.setattr(session, "execute", spy)
    splits = layout.split(6)
    for split in splits:
        for _ in layout.read_split(split):
            break
    token_map = layout.cluster.metadata.token_map
    assert hosts and all(host is not None for _, host in hosts)
    for values, host in hosts:
        high = int.from_bytes(values[1], "big", signed=True)
        assert host in token_map.get_replicas(layout.keyspace, Murmur3Token(high))
