"""The partition layout on a real node, with buckets of 10 events so boundaries come quickly:
an append lives whole in the partition of its first version, gaps are refused, reads and
retries work across (and inside overflowing) partitions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import (
    ConcurrencyError,
    DuplicateEventIdError,
    Expect,
    InvalidEventError,
    InvalidStoreUrlError,
    NewEvent,
    StoreError,
    open_store,
)
from es_core.stores.cassandra import CassandraStore

from .conftest import LAYOUT_WIDTH

pytestmark = pytest.mark.cassandra
W = LAYOUT_WIDTH
Sid = Callable[..., str]


def evs(start: int, count: int) -> list[NewEvent]:
    return [NewEvent(event_type="Tick", data={"n": n}) for n in range(start, start + count)]


def layout_of(store: CassandraStore, stream_id: str) -> list[tuple[int, int, int, int]]:
    return [(p["bucket"], p["rows"], p["first_version"], p["last_version"]) for p in store.partitions(stream_id)]


def numbers(store: CassandraStore, stream_id: str, **kwargs: object) -> list[int]:
    return [e.data["n"] for e in store.read_stream(stream_id, **kwargs)]  # type: ignore[arg-type]


def test_an_append_lives_whole_in_the_partition_of_its_first_version(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    layout.append(s, evs(1, 8), Expect.NO_STREAM)  # versions 1-8: bucket 0
    layout.append(s, evs(9, 5), 8)  # 9-13 start in bucket 0, so all of them stay there (overflow)
    layout.append(s, evs(14, 3), 13)  # 14-16 start in bucket 1
    layout.append(s, evs(17, 4), 16)  # 17-20 in bucket 1
    layout.append(s, evs(21, 1), 20)  # 21 starts bucket 2
    assert layout_of(layout, s) == [(0, 13, 1, 13), (1, 7, 14, 20), (2, 1, 21, 21)]
    assert numbers(layout, s) == list(range(1, 22))
    assert layout.stream_version(s) == 21
    for p in layout.partitions(s):  # the rule: a partition starts in its own bucket
        assert (p["first_version"] - 1) // W == p["bucket"]
        assert p["rows"] < W + 1000  # at most one batch past the nominal width


def test_a_batch_can_skip_whole_buckets_and_reads_follow_the_chain(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    layout.append(s, evs(1, 3))
    layout.append(s, evs(4, 25), 3)  # 4-28 all in bucket 0; buckets 1 and 2 never exist
    layout.append(s, evs(29, 2), 28)  # 29-30 start in bucket 2
    layout.append(s, evs(31, 1), 30)  # 31 starts bucket 3
    assert [p[0] for p in layout_of(layout, s)] == [0, 2, 3]
    assert numbers(layout, s) == list(range(1, 32))
    assert numbers(layout, s, after=12, upto=15) == [13, 14, 15]  # inside the overflow
    assert numbers(layout, s, after=27, limit=3) == [28, 29, 30]
    assert numbers(layout, s, reverse=True, limit=4) == [31, 30, 29, 28]
    assert numbers(layout, s, reverse=True, after=26, upto=30) == [30, 29, 28, 27]
    assert layout.read_stream_payloads(s, after=28) == [(v, "Tick", 1, f'{{"n":{v}}}'.encode()) for v in (29, 30, 31)]
    fresh = open_store(layout.url)  # no cached hint: the version comes from the chain of heads
    try:
        assert fresh.stream_version(s) == 31
        assert fresh.append(s, evs(32, 1), 31).last_version == 32
    finally:
        fresh.close()


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (3, 5),  # ahead, inside a bucket
        (8, 10),  # ahead, at a bucket's last version: the first-append path must check version 10
        (9, 25),  # far ahead, in a bucket that does not exist
        (10, 11),  # one ahead of a stream that exactly fills bucket 0
        (12, 10),  # behind, and version 11 started bucket 1
        (12, 3),  # behind, inside bucket 0
    ],
)
def test_an_append_at_the_wrong_version_leaves_no_gap(
    layout: CassandraStore, sid: Sid, length: int, expected: int
) -> None:
    s = sid()
    for start in range(1, length + 1, 4):  # appends of up to 4: no batch crosses bucket 1 here
        count = min(4, length - start + 1)
        layout.append(s, evs(start, count), start - 1)
    before = layout_of(layout, s)
    with pytest.raises(ConcurrencyError) as info:
        layout.append(s, evs(100, 2), expected)
    assert info.value.actual == length
    assert layout_of(layout, s) == before
    assert numbers(layout, s) == list(range(1, length + 1))


def test_retries_are_recognised_at_and_across_boundaries(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    layout.append(s, evs(1, 8))
    closing = evs(9, 2)  # versions 9-10 close bucket 0
    first = layout.append(s, closing, 8)
    # the same request again, with the same expectation and with the stream's new version
    # (the first-append path into bucket 1 sees the previous partition's head id)
    assert layout.append(s, closing, 8).duplicate
    again = layout.append(s, closing, 10)
    assert again.duplicate and (again.first_version, again.last_version) == (9, 10)
    assert again.last_position == first.last_position and again.recorded_at == first.recorded_at
    opening = evs(11, 3)
    layout.append(s, opening, 10)  # creates bucket 1
    assert layout.append(s, opening, 10).duplicate  # a refused first append, read back
    assert layout.append(s, opening, 13).duplicate  # the partition's head id
    assert layout.append(s, opening, Expect.ANY).duplicate  # the event id index
    assert layout.append(s, closing, Expect.ANY).duplicate  # an older append, found through the index
    assert layout.append(s, closing, 8).duplicate  # or read back at the versions it expected
    with pytest.raises(DuplicateEventIdError):
        layout.append(s, [*evs(50, 1), opening[1]])  # a new batch reusing an id (ANY looks them all up)
    with pytest.raises(DuplicateEventIdError):
        layout.append(s, opening[:2], 13)  # part of an earlier batch is not a retry
    assert numbers(layout, s) == list(range(1, 14))


def test_positions_rise_with_versions_across_partitions(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    for start in range(1, 40, 6):
        layout.append(s, evs(start, 6), start - 1)
    positions = [e.position for e in layout.read_stream(s)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_truncation_spans_partitions_and_keeps_the_head(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    for start in range(1, 31, 5):
        layout.append(s, evs(start, 5), start - 1)
    assert layout.truncate_stream(s, 23) == 22
    assert numbers(layout, s) == list(range(23, 31))
    assert numbers(layout, s, after=5, limit=2) == [23, 24]
    assert layout.stream_version(s) == 30
    # 1-10 in bucket 0, 11-20 in bucket 1, 21-30 in bucket 2; emptied partitions keep their heads
    assert [(p["bucket"], p["rows"]) for p in layout.partitions(s)] == [(0, 0), (1, 0), (2, 8)]
    assert layout.append(s, evs(31, 1), 30).last_version == 31
    with pytest.raises(ConcurrencyError):
        layout.append(s, evs(99, 1), 10)  # the truncated versions cannot be written again


def test_an_append_too_big_for_one_mutation_is_refused(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    chunk = "x" * (layout.payload_limit - 100)
    too_many = [NewEvent(event_type="Big", data={"blob": chunk}) for _ in range(5)]
    with pytest.raises(InvalidEventError, match="smaller batches"):
        layout.append(s, too_many)
    assert layout.stream_version(s) == 0


def test_the_url_reopens_the_same_store_and_the_bucket_width_is_fixed(layout: CassandraStore, sid: Sid) -> None:
    s = sid()
    layout.append(s, evs(1, 2))
    assert f"bucket_width={W}" in layout.url and "replication_factor=1" in layout.url
    with open_store(layout.url) as again:
        assert numbers(again, s) == [1, 2]
    wider = layout.url.replace(f"bucket_width={W}", "bucket_width=20")
    with pytest.raises(InvalidStoreUrlError, match="bucket_width=10"):
        open_store(wider)
    unset = layout.url.replace(f"&bucket_width={W}", "").replace(f"bucket_width={W}&", "")
    with open_store(unset) as adopted:
        assert isinstance(adopted, CassandraStore) and adopted.bucket_width == W


def test_a_store_that_may_not_create_its_keyspace_says_so(layout: CassandraStore) -> None:
    url = layout.url.replace("/es_test_layout?", "/es_test_absent_keyspace?") + "&create=false"
    with pytest.raises(StoreError, match="create"):
        open_store(url)


def test_the_schema_is_the_cql_in_the_docs(layout: CassandraStore) -> None:
    cql = layout.schema()
    assert list(cql) == [
        "keyspace", "events", "snapshots", "feed_announcements", "feed_shard_slots", "feed_shard_eras",
        "feed_closed", "feed_writers", "store_settings", "events_by_event_id",
    ]  # fmt: skip
    assert "PRIMARY KEY ((stream_id, bucket), version)" in cql["events"]
    assert "CLUSTERING ORDER BY (version DESC)" in cql["snapshots"]
    assert "'replication_factor': 1" in cql["keyspace"]
