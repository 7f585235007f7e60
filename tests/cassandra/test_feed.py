"""The global feed's guarantee on a real node: a projection that reads only up to the settled
position sees every event exactly once, in position order and in each stream's version order,
while writers in threads and processes append (and race); paused writers are fenced, not
lost; a partition that cannot be fenced holds the feed back and is reported, never skipped."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

import es_core.stores.cassandra_feed_reader as reader_module
from es_core import ConcurrencyError, EventStore, NewEvent, StoreOutcomeUnknownError, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_feed import position_us, slot_end, slot_of

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


class Projection:
    """What ``ProjectionRunner`` does: read from the last position, stop at the settled one."""

    def __init__(self, store: CassandraStore, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.position = store.settled_position(wait=False)
        self.seen: list[tuple[str, int, int]] = []  # (stream, version, position)

    def catch_up(self, *, wait: bool) -> None:
        settled = self.store.settled_position(wait=wait)
        for record in self.store.read_all(after=self.position):
            if record.position > settled:
                break
            if record.stream_id.startswith(self.prefix):
                self.seen.append((record.stream_id, record.version, record.position))
            self.position = record.position
        self.position = max(self.position, settled)


def _writer_loop(store: EventStore, prefix: str, writer: int, appends: int) -> None:
    """Appends to two streams of its own and one shared by every writer (so some appends race)."""
    rng = random.Random(writer)
    own = [f"{prefix}-w{writer}-{k}" for k in range(2)]
    shared = f"{prefix}-shared"
    done = 0
    while done < appends:
        stream = shared if done % 3 == 0 else rng.choice(own)
        events = [NewEvent(event_type="Tick", data={"w": writer, "n": done, "i": i}) for i in range(rng.randint(1, 3))]
        expected = store.stream_version(stream)
        try:
            while True:
                try:
                    store.append(stream, events, expected)
                    break
                except StoreOutcomeUnknownError:
                    continue  # as documented: the same ids and expected version land once
        except ConcurrencyError:
            continue
        done += 1
        time.sleep(rng.random() * 0.03)


def _process_writer(url: str, prefix: str, writer: int, appends: int) -> None:
    with open_store(url) as store:
        _writer_loop(store, prefix, writer, appends)


def test_a_projection_reading_while_writers_run_sees_every_event_exactly_once(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    prefix = sid("proj")
    reader = open_store(feed_url)
    second = open_store(feed_url)
    assert isinstance(reader, CassandraStore)
    projection = Projection(reader, prefix)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(feed_url, prefix, w, 25)) for w in (10, 11)]
    threads = [
        threading.Thread(target=_writer_loop, args=(store, prefix, w, 25))
        for w, store in enumerate([feed_store, feed_store, second, second])
    ]
    try:
        for p in procs:
            p.start()
        for t in threads:
            t.start()
        polls = 0
        while any(t.is_alive() for t in threads) or any(p.is_alive() for p in procs):
            projection.catch_up(wait=False)  # reads while appends (and fences) are under way
            polls += 1
            time.sleep(0.05)
        for t in threads:
            t.join()
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        projection.catch_up(wait=True)
    finally:
        reader.close()
        second.close()
    keys = [(s, v) for s, v, _ in projection.seen]
    assert len(keys) == len(set(keys)), "an event was delivered twice"
    positions = [p for _, _, p in projection.seen]
    assert positions == sorted(positions), "the feed went backwards"
    streams = sorted({s for s, _ in keys})
    assert len(streams) == 13 and polls > 3
    for stream in streams:
        stored = feed_store.read_stream(stream)
        delivered = [v for s, v in keys if s == stream]
        assert delivered == [e.version for e in stored], f"{stream}: missed or out of order"
        assert [p for s, _, p in projection.seen if s == stream] == [e.position for e in stored]
    assert len(keys) == sum(feed_store.stream_version(s) for s in streams)


def test_a_writer_paused_past_a_settled_position_is_fenced_and_lands_once_later(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    s = sid("paused")
    reader = open_store(feed_url)
    other = open_store(feed_url)
    assert isinstance(reader, CassandraStore)
    projection = Projection(reader, s)
    feed_store.append(s, [NewEvent(event_type="Tick", data={"n": 1})])
    feed = feed_store._feed_writer
    real_place = feed.place
    paused: list[list[int]] = []

    def place_then_pause(stream_id: str, bucket: int, count: int, first_version: int) -> list[int]:
        positions = real_place(stream_id, bucket, count, first_version)
        if not paused:  # the writer stalls after announcing; meanwhile the feed moves on and settles
            paused.append(positions)
            other.append(sid("elsewhere"), [NewEvent(event_type="Tick", data={})])
            projection.catch_up(wait=True)
        return positions

    feed.place = place_then_pause  # type: ignore[method-assign]
    try:
        result = feed_store.append(s, [NewEvent(event_type="Tick", data={"n": 2})], 1)
    finally:
        del feed.place
    try:
        settled_while_paused = projection.position
        assert paused and paused[0][0] <= settled_while_paused, "the reader did not settle past the pause"
        assert result.last_position is not None and result.last_position > settled_while_paused
        projection.catch_up(wait=True)
        assert [v for _, v, _ in projection.seen] == [1, 2]
        assert [e.position for e in feed_store.read_stream(s)][-1] == result.last_position
    finally:
        reader.close()
        other.close()


def test_an_append_announced_but_never_sent_holds_nothing_back(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    s = sid("crashed")
    feed_store._feed_writer.place(s, 0, 1, 1)  # ... and the writer dies before its conditional write
    later = feed_store.append(sid("after"), [NewEvent(event_type="Tick", data={})])
    with open_store(feed_url) as reader:
        settled = reader.settled_position()
        assert later.last_position is not None and settled >= later.last_position
        assert reader.feed_status().holes == []
    # the fenced, empty partition still takes the stream's first append, above its fence
    result = feed_store.append(s, [NewEvent(event_type="Tick", data={})], 0)
    assert result.last_position is not None and result.last_position > settled


def test_a_partition_that_cannot_be_fenced_holds_the_feed_and_is_reported(
    feed_store: CassandraStore, feed_url: str, sid: Sid, monkeypatch: pytest.MonkeyPatch
) -> None:
    poisoned, healthy = sid("poisoned"), sid("healthy")
    first = feed_store.append(poisoned, [NewEvent(event_type="Tick", data={})])
    fine = feed_store.append(healthy, [NewEvent(event_type="Tick", data={})])
    real = reader_module.execute_concurrent
    fence_of = feed_store.session.prepare("SELECT fence FROM events WHERE stream_id = ? AND bucket = 0 LIMIT 1")

    def failing_for_poisoned(session: Any, calls: list[Any], **kwargs: Any) -> list[Any]:
        results = real(session, calls, **kwargs)
        return [
            (False, RuntimeError("replicas down"))
            if any(v == poisoned for v in params) and "fence" in str(statement) else outcome
            for (statement, params), outcome in zip(calls, results, strict=True)
        ]  # fmt: skip

    with open_store(feed_url) as reader:
        assert isinstance(reader, CassandraStore)
        monkeypatch.setattr(reader_module, "execute_concurrent", failing_for_poisoned)
        held = reader.settled_position()
        assert first.last_position is not None and held < first.last_position
        holes = reader.feed_status().holes
        assert [h.stream_id for h in holes] == [poisoned] and "replicas down" in holes[0].error
        assert all(r.stream_id != poisoned for r in reader.read_all(after=held - 1) if r.position <= held)
        healthy_fence = feed_store.session.execute(fence_of, (healthy,)).one()[0]
        assert fine.last_position is not None and healthy_fence == slot_end(slot_of(fine.last_position))
        monkeypatch.setattr(reader_module, "execute_concurrent", real)
        assert reader.settled_position() >= first.last_position
        assert reader.feed_status().holes == []
        # the partition fenced before the hole was not fenced again: its fence covers its slot
        assert feed_store.session.execute(fence_of, (healthy,)).one()[0] == healthy_fence


def test_a_lagging_clock_cannot_put_a_streams_positions_out_of_order(
    feed_store: CassandraStore, feed_url: str, sid: Sid
) -> None:
    s = sid("skew")
    ahead = feed_store.append(s, [NewEvent(event_type="Tick", data={"n": 1})])
    with open_store(feed_url, clock=lambda: datetime.now(UTC) - timedelta(seconds=3)) as behind:
        late = behind.append(s, [NewEvent(event_type="Tick", data={"n": 2})], 1)
    assert ahead.last_position is not None and late.last_position is not None
    assert late.last_position > ahead.last_position
    assert [e.version for e in feed_store.read_stream(s)] == [1, 2]


def test_settled_waits_for_the_newest_event_and_never_passes_the_head(feed_store: CassandraStore, sid: Sid) -> None:
    result = feed_store.append(sid(), [NewEvent(event_type="Tick", data={})])
    assert result.last_position is not None
    quick = feed_store.settled_position(wait=False)
    started = time.monotonic()
    settled = feed_store.settled_position()
    waited = time.monotonic() - started
    assert quick <= settled and settled >= result.last_position
    assert settled <= feed_store.head_position()
    assert waited < (feed_store.feed_lease_ms + feed_store.clock_skew_ms) / 1000 + 2
    status = feed_store.feed_status()
    assert status.settled == settled and status.lag_seconds == 0.0 and status.holes == []
    assert abs(position_us(result.last_position) - time.time_ns() // 1000) < 60_000_000
