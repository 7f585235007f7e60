"""The subscription's fast path: pages of stored rows read like records (``StoredRecord``), a
page's continuity checked in one call (``check_stored``), store pages cut to the subscription's
page size, and unreadable stored bytes that stop a subscription instead of being parked."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from es_core import MemoryStore, NewEvent, StoreCorruptionError, StoredEvent, StreamGap, VersionContinuity
from es_core.encoding import StoredRecord, decode_stored
from es_core.subscriptions import Checkpoints, Delivery, MemoryCheckpoints, SQLiteCheckpoints, Subscription


def _store(streams: str = "abacabcadbc") -> MemoryStore:
    store = MemoryStore()
    for i, stream in enumerate(streams):
        store.append(stream, [NewEvent(event_type="T", data={"i": i}, metadata={"m": i})])
    return store


def _rows(store: MemoryStore) -> list[StoredEvent]:
    return [row for page in store.read_all_stored(page_size=4) for row in page]


def test_a_stored_record_reads_as_the_decoded_record_and_decodes_each_field_once() -> None:
    rows = _rows(_store())
    assert [StoredRecord(row).to_recorded() for row in rows] == [decode_stored(row) for row in rows]
    assert [tuple(StoredRecord(row)) for row in rows] == [tuple(row) for row in rows]  # the row, unchanged
    record = StoredRecord(rows[0])
    assert record.data is record.data and record.event_id is record.event_id
    assert (record.stream_id, record.version, record.position, record.event_type) == ("a", 1, 1, "T")


def test_unreadable_bytes_raise_store_corruption_when_first_read() -> None:
    row = _rows(_store())[0]
    assert StoredRecord(row._replace(event_type="U")).event_type == "U"  # nothing else is decoded
    with pytest.raises(StoreCorruptionError, match="position 1"):
        _ = StoredRecord(row._replace(data=b"{not json")).data
    with pytest.raises(StoreCorruptionError, match="position 1"):
        _ = StoredRecord(row._replace(event_id=b"short")).event_id


@pytest.mark.parametrize("max_streams", [2, 100])
def test_checking_a_page_finds_what_checking_each_row_finds(max_streams: int) -> None:
    rng = random.Random(15)
    store = MemoryStore()
    for _ in range(300):
        store.append(rng.choice("abcdefg"), [NewEvent(event_type="T", data={})])
    rows = _rows(store)
    mangled = [r for r in rows if rng.random() > 0.05]  # holes
    mangled[100:100] = mangled[90:93]  # repeats
    one, paged = [], []
    each = VersionContinuity(store, after=0, on_gap=one.append, max_streams=max_streams)
    for row in mangled:
        each.check(row)
    whole = VersionContinuity(store, after=0, on_gap=paged.append, max_streams=max_streams)
    found: list[StreamGap] = []
    for start in range(0, len(mangled), 7):
        found += whole.check_stored(mangled[start:start + 7])
    assert one and paged == one == found
    assert (whole.checked, whole.after, whole.first_sight_reads) == (each.checked, each.after, each.first_sight_reads)


class _OddPages(MemoryStore):
    """Hands the log over in pages of 5, whatever page size was asked for."""

    def read_all_stored(self, *, after: int = 0, limit: int | None = None, page_size: int = 1000
                        ) -> Iterator[list[StoredEvent]]:
        rows = [row for page in super().read_all_stored(after=after, limit=limit) for row in page]
        return (rows[i:i + 5] for i in range(0, len(rows), 5))


@pytest.mark.parametrize("page_size", [2, 5, 7])
def test_store_pages_of_any_size_become_pages_of_the_subscriptions_size(page_size: int) -> None:
    store = _OddPages()
    for i in range(23):
        store.append(f"s{i % 4}", [NewEvent(event_type="T", data={"i": i})])
    starts: list[int] = []

    class Counting(MemoryCheckpoints):
        def page(self, name: str, owner: str, start: int, lease_until: float):  # type: ignore[no-untyped-def]
            starts.append(start)
            return super().page(name, owner, start, lease_until)

    seen: list[int] = []
    subscription = Subscription(store, Counting(), "s", lambda d: seen.append(d.record.data["i"]),
                                page_size=page_size)
    assert subscription.catch_up() == 23
    assert seen == list(range(23))
    assert starts == list(range(0, 23, page_size))


@pytest.mark.parametrize("target", ["memory", "sqlite"])
def test_a_corrupt_stored_event_stops_the_subscription_unparked_before_it(target: str, tmp_path: Path) -> None:
    class Corrupt(MemoryStore):
        def read_all_stored(self, *, after: int = 0, limit: int | None = None, page_size: int = 1000
                            ) -> Iterator[list[StoredEvent]]:
            pages = super().read_all_stored(after=after, limit=limit, page_size=page_size)
            return ([r._replace(data=b"\xff") if r.position == 4 else r for r in page] for page in pages)

    store = Corrupt()
    for i in range(6):
        store.append("a", [NewEvent(event_type="T", data={"i": i})])
    checkpoints: Checkpoints = MemoryCheckpoints() if target == "memory" else SQLiteCheckpoints(tmp_path / "m.db")
    seen: list[int] = []

    def handle(d: Delivery) -> None:
        seen.append(d.record.data["i"])

    subscription = Subscription(store, checkpoints, "s", handle, page_size=10)
    with pytest.raises(StoreCorruptionError, match="position 4"):
        subscription.catch_up()
    assert (seen[-3:], checkpoints.get("s").position, checkpoints.parked("s")) == ([0, 1, 2], 3, [])
