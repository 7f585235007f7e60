"""Snapshot table and retention primitives, on every backend."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from es_core import EventStore, InvalidInputError, NewEvent, Snapshot

Sid = Callable[..., str]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def snap(stream_id: str, version: int, state: bytes = b"{}", schema: int = 1) -> Snapshot:
    return Snapshot(
        stream_id=stream_id, version=version, state_type="thing", state_schema_version=schema,
        state=state, taken_at=T0,
    )


def test_latest_snapshot_at_or_before_a_version(store: EventStore, sid: Sid) -> None:
    s = sid()
    assert store.latest_snapshot(s) is None
    for v in (5, 10, 15):
        store.save_snapshot(snap(s, v, state=f'{{"v":{v}}}'.encode()))
    latest = store.latest_snapshot(s)
    assert latest is not None and latest.version == 15 and latest.state == b'{"v":15}'
    assert latest.taken_at == T0 and latest.state_type == "thing" and latest.state_schema_version == 1
    assert store.latest_snapshot(s, upto=12).version == 10  # type: ignore[union-attr]
    assert store.latest_snapshot(s, upto=4) is None
    assert store.snapshot_versions(s) == [15, 10, 5]
    assert store.snapshot_versions(sid("other")) == []


def test_saving_a_snapshot_at_the_same_version_replaces_it(store: EventStore, sid: Sid) -> None:
    s = sid()
    store.save_snapshot(snap(s, 3, b"old"))
    store.save_snapshot(snap(s, 3, b"new", schema=2))
    latest = store.latest_snapshot(s)
    assert latest is not None and latest.state == b"new" and latest.state_schema_version == 2
    assert store.snapshot_versions(s) == [3]


def test_pruning_keeps_the_newest(store: EventStore, sid: Sid) -> None:
    s = sid()
    for v in range(1, 6):
        store.save_snapshot(snap(s, v))
    assert store.prune_snapshots(s, keep=2) == 3
    assert store.snapshot_versions(s) == [5, 4]
    assert store.prune_snapshots(s, keep=2) == 0


def test_bad_snapshots_are_refused(store: EventStore, sid: Sid) -> None:
    with pytest.raises(InvalidInputError):
        store.save_snapshot(snap(sid(), 0))
    with pytest.raises(InvalidInputError):
        store.save_snapshot({"stream_id": "x"})  # type: ignore[arg-type]


def test_truncation_drops_only_older_events_and_keeps_the_version(store: EventStore, sid: Sid) -> None:
    s = sid()
    store.append(s, [NewEvent(event_type="E", data={"n": i}) for i in range(1, 11)])
    assert store.truncate_stream(s, 7) == 6
    assert [e.version for e in store.read_stream(s)] == [7, 8, 9, 10]
    assert store.stream_version(s) == 10
    assert store.append(s, [NewEvent(event_type="E", data={"n": 11})], 10).last_version == 11
    with pytest.raises(InvalidInputError):
        store.truncate_stream(s, 12)  # beyond the stream: would drop the latest event
    assert store.truncate_stream(s, 1) == 0
