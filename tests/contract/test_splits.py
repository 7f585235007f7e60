"""Partitioned reads (``EventStore.split`` / ``read_split``), run over every backend.

On a shared backend (the Cassandra contract keyspace) other tests' streams are in the splits
too: the structural checks (each stream in one split, whole, in order) apply to every stream
read; the exact contents are checked on this test's streams.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import msgspec
import pytest

from es_core import EventStore, Expect, InvalidInputError, NewEvent, RecordedEvent, open_store
from es_core.errors import InvalidSplitError
from es_core.splits import MAX_SPLITS, StoreSplit

Sid = Callable[..., str]


def ev(n: int) -> NewEvent:
    return NewEvent(event_type="Happened", data={"n": n})


def write_streams(store: EventStore, sid: Sid, lengths: dict[str, int]) -> dict[str, str]:
    """Streams of the given lengths, appended interleaved (as a live service writes them)."""
    ids = {name: sid(name) for name in lengths}
    written = dict.fromkeys(lengths, 0)
    while any(written[n] < lengths[n] for n in lengths):
        for name in lengths:
            if written[name] < lengths[name]:
                batch = min(3, lengths[name] - written[name])
                events = [ev(written[name] + i + 1) for i in range(batch)]
                store.append(ids[name], events, written[name] or Expect.NO_STREAM)
                written[name] += batch
    return ids


def streams_of(events: list[RecordedEvent]) -> list[tuple[str, list[RecordedEvent]]]:
    """The runs of one stream's events, in the order read."""
    runs: list[tuple[str, list[RecordedEvent]]] = []
    for e in events:
        if runs and runs[-1][0] == e.stream_id:
            runs[-1][1].append(e)
        else:
            runs.append((e.stream_id, [e]))
    return runs


def read_plan(store: EventStore, splits: list[StoreSplit], **kwargs: int) -> dict[str, list[RecordedEvent]]:
    """Every split's streams; asserts each stream is one run in one split, in version order."""
    seen: dict[str, list[RecordedEvent]] = {}
    for split in splits:
        for stream_id, events in streams_of(list(store.read_split(split, **kwargs))):
            assert stream_id not in seen, f"{stream_id} read twice (or cut in two)"
            versions = [e.version for e in events]
            assert versions == sorted(versions) and len(set(versions)) == len(versions)
            seen[stream_id] = events
    return seen


@pytest.mark.parametrize("count", [1, 2, 5, 16])
def test_splits_hold_every_stream_once_and_whole(store: EventStore, sid: Sid, count: int) -> None:
    ids = write_streams(store, sid, {"a": 7, "b": 1, "c": 12, "d": 4, "e": 9})
    splits = store.split(count)
    assert 1 <= len(splits) and [s.index for s in splits] == list(range(len(splits)))
    assert all(s.count == len(splits) for s in splits)
    seen = read_plan(store, splits)
    for stream_id in ids.values():
        assert seen[stream_id] == store.read_stream(stream_id)


def test_memory_and_sqlite_plan_at_most_one_split_per_stream(store: EventStore, sid: Sid, backend: str) -> None:
    if backend == "cassandra":
        pytest.skip("Cassandra plans by token range, whatever the streams")
    write_streams(store, sid, {"a": 3, "b": 5})
    assert len(store.split(10)) == 2
    assert len(store.split(1)) == 1


def test_a_plan_is_a_cut_of_the_log(store: EventStore, sid: Sid) -> None:
    ids = write_streams(store, sid, {"a": 4, "b": 2})
    splits = store.split(3)
    store.append(ids["a"], [ev(5)], 4)
    late = sid("late")
    store.append(late, [ev(1)], Expect.NO_STREAM)
    seen = read_plan(store, splits)
    assert [e.version for e in seen[ids["a"]]] == [1, 2, 3, 4]
    assert late not in seen
    again = read_plan(store, store.split(3))
    assert [e.version for e in again[ids["a"]]] == [1, 2, 3, 4, 5] and len(again[late]) == 1


def test_split_reads_page_without_losing_events(store: EventStore, sid: Sid) -> None:
    ids = write_streams(store, sid, {"a": 5, "b": 3})
    splits = store.split(2)
    whole = read_plan(store, splits)
    for page_size in (1, 2):
        paged = read_plan(store, splits, page_size=page_size)
        assert {s: paged[s] for s in ids.values()} == {s: whole[s] for s in ids.values()}


def test_truncated_streams_read_as_read_stream(store: EventStore, sid: Sid) -> None:
    ids = write_streams(store, sid, {"a": 6, "b": 2})
    store.truncate_stream(ids["a"], 5)
    seen = read_plan(store, store.split(4))
    assert seen[ids["a"]] == store.read_stream(ids["a"])
    assert [e.version for e in seen[ids["a"]]] == [5, 6]


def test_splits_are_small_and_travel_by_pickle(store: EventStore, sid: Sid, backend: str) -> None:
    ids = write_streams(store, sid, {"a": 3})
    for split in store.split(8):
        data = pickle.dumps(split)
        assert len(data) < 4096
        assert pickle.loads(data) == split
    if backend != "memory":  # a memory store lives in its process: nothing else can open it
        mine = next(s for s in store.split(8) if any(e.stream_id == ids["a"] for e in store.read_split(s)))
        with open_store(mine.url) as elsewhere:
            assert [e.stream_id for e in elsewhere.read_split(pickle.loads(pickle.dumps(mine)))].count(ids["a"]) == 3


@pytest.mark.parametrize("count", [0, -1, True, 2.0, "2", None, MAX_SPLITS + 1])
def test_bad_split_counts_are_refused(store: EventStore, count: object) -> None:
    with pytest.raises(InvalidSplitError, match="split count"):
        store.split(count)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [None, "split-1", {"index": 0}])
def test_read_split_refuses_what_is_not_a_split(store: EventStore, bad: object) -> None:
    with pytest.raises(InvalidSplitError, match="StoreSplit"):
        store.read_split(bad)  # type: ignore[arg-type]


def test_read_split_refuses_another_stores_split(store: EventStore, sid: Sid, backend: str, tmp_path: object) -> None:
    write_streams(store, sid, {"a": 1})
    split = store.split(1)[0]
    with pytest.raises(InvalidSplitError, match="planned on"):
        store.read_split(msgspec.structs.replace(split, origin="sqlite:////elsewhere.db"))
    if backend in ("memory", "sqlite"):
        other = open_store("memory://" if backend == "memory" else f"sqlite:///{tmp_path}/other.db")
        with other, pytest.raises(InvalidSplitError, match="planned on"):
            other.read_split(split)
    with pytest.raises(InvalidInputError):
        store.read_split(split, page_size=-1)
