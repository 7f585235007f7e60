"""The global feed under wrong clocks, on a real node: a writer whose clock lags or leads, and a
reader whose clock leads, never make a projection miss an event; a fast clock cannot drag
positions ahead or stall a settle; and the two halves of the close protocol (the writer sees the
marker, or the reader sees the announcement) each happen when they should."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import EventStore, NewEvent, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_feed import position_us, shard_of, slot_of
from tests.cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]
LEASE_S = 1.0


def skewed(url: str, seconds: float, **options: Any) -> CassandraStore:
    """A handle on a host whose clock is ``seconds`` off (the store's one clock)."""
    store = open_store(url, clock=lambda: datetime.now(UTC) + timedelta(seconds=seconds), **options)
    assert isinstance(store, CassandraStore)
    return store


def tick(store: EventStore, stream_id: str, n: int = 0) -> int:
    result = store.append(stream_id, [NewEvent(event_type="Tick", data={"n": n})])
    assert result.last_position is not None
    return result.last_position


def delivered(store: CassandraStore, after: int, upto: int, streams: set[str]) -> list[tuple[str, int]]:
    return [
        (r.stream_id, r.version) for r in store.read_all(after=after) if r.position <= upto and r.stream_id in streams
    ]


@pytest.mark.parametrize("offset", [-1.0, -10.0, 60.0], ids=["lags-1s", "lags-10s", "leads-1min"])
def test_a_writer_with_a_wrong_clock_never_lands_at_or_below_a_settled_position(
    feed_store: CassandraStore, feed_url: str, sid: Sid, offset: float
) -> None:
    writer = skewed(feed_url, offset)
    reader = open_store(feed_url)
    assert isinstance(reader, CassandraStore)
    try:
        start = reader.settled_position(wait=False)
        tick(writer, sid("warm-up"))  # the writer holds its number before the reader settles
        streams: set[str] = set()
        for round_no in range(3):
            tick(feed_store, sid(f"clock-right-{round_no}"))
            settled = reader.settled_position()
            fresh = sid(f"wrong-clock-{round_no}")  # a new partition nobody has fenced yet
            streams.add(fresh)
            assert tick(writer, fresh, round_no) > settled, "a late event landed below the settled position"
        final = reader.settled_position()
        seen = delivered(reader, start, final, streams)
        assert sorted(seen) == sorted((s, 1) for s in streams)
    finally:
        writer.close()
        reader.close()


def test_a_lagging_writer_whose_clock_is_not_bounded_moves_past_closed_slots(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    # a skew allowance of ten minutes: this handle's positions really are 10 s behind, so only
    # the closed markers keep it above what readers settled
    writer = skewed(feed_url, -10.0, clock_skew_ms=600_000)
    try:
        tick(writer, sid("behind"))
        assert writer._feed_writer.clock.now_us() < time.time_ns() // 1000 - 8_000_000
        tick(feed_store, sid("now"))
        settled = feed_store.settled_position()
        late = sid("late")
        landed = tick(writer, late)
        assert landed > settled and slot_of(landed) > slot_of(settled)
        assert writer._feed_writer._closed_seen[shard_of(late, writer.feed_shards)] >= slot_of(settled)
        assert [s for s, _ in delivered(feed_store, settled, feed_store.settled_position(), {late})] == [late]
    finally:
        writer.close()


def test_a_fast_clock_is_held_to_the_allowance_reported_and_does_not_stall_a_settle(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    fast = skewed(feed_url, 60.0)
    try:
        position = tick(fast, sid("fast"))  # one machine: its clock stands for the cluster's
        assert position_us(position) <= time.time_ns() // 1000 + fast.clock_skew_ms * 1000 + 50_000
        status = fast.feed_status()
        assert status.clock_out_of_bounds and 59 < status.clock_offset_seconds < 61
        assert status.head_ahead_seconds < 1.0
        started = time.monotonic()
        settled = feed_store.settled_position()
        assert time.monotonic() - started < 20, "a settle waited for a clock a minute ahead"
        assert settled >= position
        assert not feed_store.feed_status().clock_out_of_bounds
        assert feed_store.append(sid("after-fast"), [NewEvent(event_type="Tick", data={})]).last_position is not None
    finally:
        fast.close()


def test_a_reader_whose_clock_leads_misses_nothing_while_writers_run(feed_url: str, sid: Sid) -> None:
    reader = skewed(feed_url, 60.0)
    writers = [open_store(feed_url) for _ in range(2)]
    prefix = sid("lead-reader")
    stop = threading.Event()
    written: list[str] = []

    def write(store: EventStore, w: int) -> None:
        n = 0
        while not stop.is_set():
            stream = f"{prefix}-{w}-{n % 5}"
            store.append(stream, [NewEvent(event_type="Tick", data={"n": n})])
            written.append(stream)
            n += 1

    threads = [threading.Thread(target=write, args=(store, w)) for w, store in enumerate(writers)]
    position, seen = reader.settled_position(wait=False), []
    try:
        for t in threads:
            t.start()
        for round_no in range(12):
            settled = reader.settled_position(wait=round_no % 3 == 0)
            for record in reader.read_all(after=position):
                if record.position > settled:
                    break
                if record.stream_id.startswith(prefix):
                    seen.append((record.stream_id, record.version))
            position = max(position, settled)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        settled = reader.settled_position()
        seen += [(r.stream_id, r.version) for r in reader.read_all(after=position) if r.stream_id.startswith(prefix)]
    finally:
        stop.set()
        for store in (reader, *writers):
            store.close()
    assert len(seen) == len(set(seen)) == len(written) > 10
    for stream in set(written):
        assert [v for s, v in seen if s == stream] == list(range(1, written.count(stream) + 1))


def test_a_writer_that_finds_its_slot_closed_after_announcing_moves_on(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    """The writer's half of the handshake: a reader closes the slot between the writer's
    announcement and its read of the marker; the writer sees the marker and takes later positions."""
    reader = open_store(feed_url)
    assert isinstance(reader, CassandraStore)
    s = sid("closed-under")
    index = feed_store._feed_writer._index
    real_closed_upto = index.closed_upto
    settled: list[int] = []

    def reader_closes_first(shard: int) -> int:
        if not settled:
            tick(reader, sid("head-now"))  # the head moves to (at least) this append's slot ...
            settled.append(reader.settled_position())  # ... and the reader closes up to it
        return real_closed_upto(shard)

    index.closed_upto = reader_closes_first  # type: ignore[method-assign]
    try:
        landed = tick(feed_store, s)
    finally:
        del index.closed_upto
        reader.close()
    assert settled and landed > settled[0] and slot_of(landed) > slot_of(settled[0])
    assert [e.position for e in feed_store.read_stream(s)] == [landed]


def test_a_head_pushed_ahead_by_an_unbounded_clock_stalls_only_its_own_events(sid: Sid) -> None:
    # its own keyspace: the head stays a minute ahead for a minute
    url = cassandra_url_or_skip("es_test_fast_head")
    fast = skewed(url, 60.0, clock_skew_ms=120_000)  # an allowance that lets a minute through
    normal = open_store(url)
    try:
        ahead = tick(fast, sid("ahead"))
        assert position_us(ahead) > time.time_ns() // 1000 + 50_000_000
        settled = normal.settled_position()
        assert settled < ahead, "a reader closed slots a minute ahead of the cluster's clock"
        status = normal.feed_status()
        assert 50 < status.head_ahead_seconds < 70 and status.head == ahead
        landed = tick(normal, sid("not-dragged"))  # the other writers stay on the cluster's time
        assert position_us(landed) < time.time_ns() // 1000 + 5_000_000
        assert normal.settled_position() >= landed
    finally:
        fast.close()
        normal.close()
