"""Racing writers on a real node, across processes and threads, with buckets of 10 events so
the races cross many partition boundaries: each version is written exactly once."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import ConcurrencyError, EventStore, Expect, NewEvent, open_store
from es_core.stores.cassandra import CassandraStore

from .conftest import LAYOUT_WIDTH

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]
PROCESSES = 5
BATCHES_EACH = 12


def _race(store: EventStore, stream_id: str, writer: int, batches: int) -> list[tuple[int, int]]:
    """Append ``batches`` batches of 1-4 events, each at the version just read; on a conflict,
    read again. Returns the (first, last) versions won."""
    rng = random.Random(writer)
    won: list[tuple[int, int]] = []
    while len(won) < batches:
        size = rng.randint(1, 4)
        events = [NewEvent(event_type="Tick", data={"w": writer, "b": len(won), "i": i}) for i in range(size)]
        version = store.stream_version(stream_id)
        try:
            result = store.append(stream_id, events, version)
        except ConcurrencyError:
            continue
        won.append((result.first_version, result.last_version))
    return won


def _process_writer(url: str, stream_id: str, writer: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with open_store(url) as store:
        out.put((writer, _race(store, stream_id, writer, BATCHES_EACH)))


def test_racing_processes_write_each_version_once_across_bucket_boundaries(layout: CassandraStore, sid: Sid) -> None:
    s = sid("race")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(layout.url, s, w, out)) for w in range(PROCESSES)]
    for p in procs:
        p.start()
    won = dict(out.get(timeout=240) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    events = layout.read_stream(s)
    total = events[-1].version
    assert [e.version for e in events] == list(range(1, total + 1))
    claimed = sorted(v for batches in won.values() for first, last in batches for v in range(first, last + 1))
    assert claimed == list(range(1, total + 1)), "a version was won twice or lost"
    for writer, batches in won.items():  # each batch once, whole, in its writer's order
        for index, (first, last) in enumerate(batches):
            mine = events[first - 1 : last]
            assert {(e.data["w"], e.data["b"]) for e in mine} == {(writer, index)}
            assert [e.data["i"] for e in mine] == list(range(last - first + 1))
    parts = layout.partitions(s)
    assert sum(p["rows"] for p in parts) == total and len(parts) > 3
    for p in parts:  # every batch lies whole in the partition of its first version
        assert (p["first_version"] - 1) // LAYOUT_WIDTH == p["bucket"]
        for batches in won.values():
            for first, last in batches:
                assert not (first < p["first_version"] <= last), "a batch was split over two partitions"


def test_racing_threads_appending_with_any_lose_nothing(layout: CassandraStore, sid: Sid) -> None:
    s = sid("any")
    handles = [layout, open_store(layout.url), open_store(layout.url)]
    results: list[list[int]] = [[] for _ in range(6)]

    def run(worker: int) -> None:
        store = handles[worker % len(handles)]
        for i in range(8):
            results[worker].append(
                store.append(s, [NewEvent(event_type="Tick", data={"w": worker, "i": i})]).last_version
            )

    threads = [threading.Thread(target=run, args=(w,)) for w in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for extra in handles[1:]:
            extra.close()
    events = layout.read_stream(s)
    assert [e.version for e in events] == list(range(1, 49))
    assert sorted(v for r in results for v in r) == list(range(1, 49))
    for worker in range(6):
        assert [e.data["i"] for e in events if e.data["w"] == worker] == list(range(8))


def _send_together(stores: dict[str, EventStore], stream_id: str, request: list[NewEvent]) -> dict[str, Any]:
    """Every store reads the stream's version, waits for the others, then appends ``request``."""
    barrier = threading.Barrier(len(stores))
    answers: dict[str, Any] = {}

    def send(name: str) -> None:
        store = stores[name]
        version = store.stream_version(stream_id)
        barrier.wait()
        answers[name] = store.append(stream_id, request, version or Expect.NO_STREAM)

    threads = [threading.Thread(target=send, args=(name,)) for name in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_the_same_request_from_two_instances_is_written_once(layout: CassandraStore, sid: Sid) -> None:
    other = open_store(layout.url)
    try:
        for round_no in range(8):
            s = sid(f"twice{round_no}")
            layout.append(s, [NewEvent(event_type="Tick", data={"i": i}) for i in range(round_no)])
            request = [NewEvent(event_type="Retry", data={"round": round_no}) for _ in range(1 + round_no % 3)]
            answers = _send_together({"a": layout, "b": other}, s, request)
            a, b = answers["a"], answers["b"]
            assert sorted([a.duplicate, b.duplicate]) == [False, True]
            assert (a.first_version, a.last_version, a.last_position) == (
                b.first_version,
                b.last_version,
                b.last_position,
            )
            assert layout.stream_version(s) == round_no + len(request)
    finally:
        other.close()
