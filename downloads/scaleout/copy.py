"""Copying streams between stores exactly: the same events (ids, types, data, metadata) at the
same versions with the same recorded times, and the snapshots beside them.

Each original append (one request: its events share a request id and a recorded time) is
appended again as one, at its exact expected version, with its own event ids; so a copy that
runs again (a task retried after its worker died) writes nothing twice: the store recognises
each append as a retry of the one that landed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import msgspec

from es_core import EventStore, NewEvent, RecordedEvent, Snapshot
from es_core.limits import MAX_EVENTS_PER_APPEND


class StreamsCopy(msgspec.Struct, kw_only=True):
    """Events in log order (each stream's in version order) and snapshots, ready to copy."""

    events: list[RecordedEvent]
    snapshots: list[Snapshot]


class RecordedTimes:
    """A store clock that tells each thread the recorded time it set: copies running in threads
    of one process can share a store handle (and its one clock)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, moment: datetime) -> None:
        self._local.moment = moment

    def __call__(self) -> datetime:
        moment: datetime | None = getattr(self._local, "moment", None)
        return moment if moment is not None else datetime.now(UTC)


def contents_of(store: EventStore) -> StreamsCopy:
    """Everything in ``store`` (a scratch store one process filled), to copy elsewhere."""
    events = list(store.read_all())
    snapshots = [
        snapshot
        for stream_id in dict.fromkeys(e.stream_id for e in events)
        for version in reversed(store.snapshot_versions(stream_id))
        if (snapshot := store.latest_snapshot(stream_id, upto=version)) is not None
    ]
    return StreamsCopy(events=events, snapshots=snapshots)


def copy_into(target: EventStore, streams: StreamsCopy) -> int:
    """Append ``streams`` to ``target`` as they were recorded; returns the events written."""
    clock = target.clock if isinstance(target.clock, RecordedTimes) else RecordedTimes()
    target.clock = clock
    written = 0
    for batch in _appends(streams.events):
        first = batch[0]
        clock.set(first.recorded_at)
        result = target.append(
            first.stream_id,
            [
                NewEvent(
                    event_type=e.event_type, data=e.data, schema_version=e.schema_version, event_id=e.event_id,
                    metadata=e.metadata,
                )
                for e in batch
            ],
            first.version - 1,
        )
        written += 0 if result.duplicate else result.count
    for snapshot in streams.snapshots:
        target.save_snapshot(snapshot)
    return written


def _appends(events: Iterable[RecordedEvent]) -> Iterator[list[RecordedEvent]]:
    """Runs of one stream's events with one request id and one recorded time: the original appends."""
    batch: list[RecordedEvent] = []
    for e in events:
        if batch and (
            e.stream_id != batch[0].stream_id
            or e.recorded_at != batch[0].recorded_at
            or e.metadata.get("request_id") != batch[0].metadata.get("request_id")
            or len(batch) == MAX_EVENTS_PER_APPEND
        ):
            yield batch
            batch = []
        batch.append(e)
    if batch:
        yield batch
