"""Retention: archive, then drop, the events a kept snapshot already covers (Netflix expired
pre-snapshot events "like log rotation"). Archive first, delete second, so a crash in between
leaves events in both places, never in neither."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec

from .errors import HistoryTruncatedError
from .events import RecordedEvent
from .repository import Repository

Archive = Callable[[list[RecordedEvent]], None]


class JsonlArchive:
    """Appends archived events to a JSON-lines file, one record per line, fsynced."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, events: list[RecordedEvent]) -> None:
        with self.path.open("ab") as out:
            for event in events:
                out.write(msgspec.json.encode(event) + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> Iterable[RecordedEvent]:
        if not self.path.exists():
            return
        with self.path.open("rb") as lines:
            for line in lines:
                yield msgspec.json.decode(line, type=RecordedEvent)


def archive_before_snapshot(
    repository: Repository[Any],
    aggregate_id: str,
    archive: Archive | None = None,
) -> int:
    """Move the events before the latest usable snapshot into ``archive`` (or drop them when
    ``archive`` is None) and delete them from the store. Returns how many were removed.

    Loads keep working: they start from the snapshot. Loads *before* the snapshot's version
    then raise ``HistoryTruncatedError``."""
    aggregate = repository.aggregate_cls(aggregate_id)
    snapshot = repository._usable_snapshot(aggregate, None, None)
    if snapshot is None:
        raise HistoryTruncatedError(
            f"{aggregate.stream_id!r} has no usable snapshot; archiving would lose its state"
        )
    events = repository.store.read_stream(aggregate.stream_id, upto=snapshot.version - 1)
    if not events:
        return 0
    if archive is not None:
        archive(events)
    return repository.store.truncate_stream(aggregate.stream_id, snapshot.version)
