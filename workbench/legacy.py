"""Recorded event logs on disk (JSON lines), loading them into a store with their original
times, and copy-and-transform migrations from one store into another.

A recorded log line is one stored event::

    {"stream_id": "member-ava", "version": 1, "event_id": "...", "event_type": "MemberJoined",
     "schema_version": 1, "data": {...}, "metadata": {...}, "recorded_at": "2025-01-06T08:30:00.239Z"}

Lines are in commit order; a stream's versions count up from 1 with no gaps.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from es_core import EventRegistry, EventStore, NewEvent, event_id_from

from .render import card as card_html
from .settings import PROJECT_ROOT

LEGACY_DIR = PROJECT_ROOT / "data" / "legacy"
PROTOTYPE_LOG = LEGACY_DIR / "downloads_prototype_2025.jsonl"
SOURCE_ID = "migrated_from_event_id"  # metadata key naming a copied event's source event
Progress = Callable[[int, int], None]


class LogLine(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One line of a recorded log (a stored event without its global position)."""

    stream_id: str
    version: int
    event_id: UUID
    event_type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any] = {}
    recorded_at: datetime


def read_jsonl(path: str | os.PathLike[str] = PROTOTYPE_LOG) -> Iterator[LogLine]:
    """The lines of a recorded log, checked against :class:`LogLine` (errors name the line)."""
    decoder = msgspec.json.Decoder(LogLine)
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.ValidationError as exc:
                raise ValueError(f"{path}:{number}: not a recorded event: {exc}") from exc


@contextmanager
def _clock_override(store: EventStore) -> Iterator[Callable[[datetime], None]]:
    """Let the caller set the time the store stamps on the next append (the store's clock is
    a plain callable attribute); the store's own clock comes back afterwards."""
    original = store.clock
    moment: list[datetime] = [original()]
    store.clock = lambda: moment[0]

    def set_time(at: datetime) -> None:
        moment[0] = at

    try:
        yield set_time
    finally:
        store.clock = original


def import_jsonl(store: EventStore, path: str | os.PathLike[str] = PROTOTYPE_LOG) -> int:
    """Append a recorded log to ``store`` as it was recorded: same streams, versions, event ids,
    shapes (old schema versions stay old) and recording times. Returns the events appended.

    Each line is appended expecting the version before it, so a log with a gap or a reordered
    line is refused; importing the same log twice writes nothing the second time."""
    return append_as_recorded(store, read_jsonl(path))


def append_as_recorded(store: EventStore, records: Iterable[Any]) -> int:
    """Append records (``RecordedEvent``s, or lines of a recorded log) one by one, each at its
    own version with its own id, shape, metadata and recording time. Returns the events
    appended (a record already stored with that id counts as a retry: nothing)."""
    appended = 0
    with _clock_override(store) as set_time:
        for record in records:
            set_time(record.recorded_at)
            event = NewEvent(
                event_type=record.event_type,
                schema_version=record.schema_version,
                data=record.data,
                metadata=record.metadata,
                event_id=record.event_id,
            )
            result = store.append(record.stream_id, [event], record.version - 1)
            appended += 0 if result.duplicate else 1
    return appended


@dataclass
class MigrationReport:
    """What a copy-and-transform migration read and wrote."""

    records_read: int = 0
    events_written: int = 0
    dropped: int = 0  # records that decode to no event (retired types)
    split: int = 0  # records that became more than one event
    streams: int = 0
    duplicates: int = 0  # appends the target recognised as retries
    skipped: int = 0  # records already copied by an earlier run
    shapes_in: Counter[tuple[str, int]] = field(default_factory=Counter)
    shapes_out: Counter[tuple[str, int]] = field(default_factory=Counter)

    def _repr_html_(self) -> str:
        counts = {
            name: getattr(self, name)
            for name in ("records_read", "events_written", "dropped", "split", "streams", "skipped", "duplicates")
        }
        shapes = {
            "read (stored shapes)": _shapes(self.shapes_in),
            "written (current shapes)": _shapes(self.shapes_out),
        }
        return card_html("MigrationReport", {**counts, **shapes})


def _last_source_id(target: EventStore, stream_id: str) -> str | None:
    """The source event id of the newest copied event in a target stream (events written there
    by anything but a migration carry none and are passed over)."""
    for record in target.read_stream(stream_id, reverse=True):
        source_id = record.metadata.get(SOURCE_ID)
        if source_id is not None:
            return str(source_id)
    return None


def _shapes(counter: Counter[tuple[str, int]]) -> str:
    return ", ".join(f"{t} v{v}: {n}" for (t, v), n in sorted(counter.items()))


def copy_transform(
    source: EventStore,
    target: EventStore,
    registry: EventRegistry,
    *,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every event of ``source`` into ``target`` in its *current* shape (as ``registry``
    decodes it), keeping streams, order and recording times.

    Re-runnable: each copied event names its source event in its metadata, so a run resumes
    every stream after the last source event already copied (``skipped`` counts the records
    passed over), and event ids derive from the source's, so a retried append is recognised.
    Stream versions may change: a split record becomes several events, a retired one none, so
    readers must not carry source versions over."""
    report = MigrationReport()
    versions: dict[str, int] = {}
    resume_after: dict[str, str | None] = {}  # stream -> last source event id already copied
    head = source.head_position()  # progress runs over positions, which need not be dense
    with _clock_override(target) as set_time:
        for record in source.read_all():
            report.records_read += 1
            stream = record.stream_id
            if stream not in versions:
                versions[stream] = target.stream_version(stream)
                resume_after[stream] = _last_source_id(target, stream)
            if resume_after[stream] is not None:
                report.skipped += 1
                if str(record.event_id) == resume_after[stream]:
                    resume_after[stream] = None  # copy from the next record of this stream on
                continue
            report.shapes_in[(record.event_type, record.schema_version)] += 1
            events = registry.decode(record)
            if not events:
                report.dropped += 1
            elif len(events) > 1:
                report.split += 1
            if events:
                meta = {
                    **record.metadata,
                    "migrated_from": f"{record.event_type} v{record.schema_version}",
                    SOURCE_ID: str(record.event_id),
                }
                batch = [
                    registry.encode(event, event_id=event_id_from("migrated", record.event_id, i), metadata=meta)
                    for i, event in enumerate(events)
                ]
                set_time(record.recorded_at)
                result = target.append(stream, batch, versions[stream])
                if result.duplicate:
                    report.duplicates += 1
                else:
                    report.events_written += result.count
                    versions[stream] = result.last_version
                for event in batch:
                    report.shapes_out[(event.event_type, event.schema_version)] += 1
            if progress is not None and report.records_read % 100 == 0:
                progress(record.position, head)
    report.streams = len(versions)
    if progress is not None:
        progress(head, head)
    return report
