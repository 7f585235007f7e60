"""An in-memory store: for tests, notebooks and what-if scratch replays. Thread-safe; gone on exit."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import msgspec

from ..events import AppendResult, ExpectedVersion, PreparedEvent, Snapshot, StoredEvent
from ..limits import MAX_PAYLOAD_BYTES
from ..splits import StoreSplit, in_range, plan, stream_ranges
from .base import Clock, EventStore, check_expected, match_retry, micros, moment


class MemoryStore(EventStore):
    scheme = "memory"
    url = "memory://"

    def __init__(self, *, clock: Clock | None = None, payload_limit: int = MAX_PAYLOAD_BYTES) -> None:
        super().__init__(clock=clock, payload_limit=payload_limit)
        self._lock = threading.RLock()
        self._streams: dict[str, list[StoredEvent]] = {}
        self._versions: dict[str, int] = {}
        self._log: list[StoredEvent | None] = []  # index = position - 1; None once truncated
        self._ids: dict[uuid.UUID, tuple[str, int, int]] = {}  # id -> (stream, version, position)
        self._snapshots: dict[str, dict[int, Snapshot]] = {}
        self._origin = f"memory://#{uuid.uuid4().hex[:12]}"  # one process, one object: splits name it

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        with self._lock:
            current = self._versions.get(stream_id, 0)
            if events and events[0].event_id in self._ids:
                return self._retry(stream_id, events)
            conflict = check_expected(stream_id, expected, current)
            if conflict:
                raise conflict
            for e in events:
                if e.event_id in self._ids:
                    return self._retry(stream_id, events)
            stream = self._streams.setdefault(stream_id, [])
            at = micros(recorded_at)
            for i, e in enumerate(events, start=1):
                stored = StoredEvent(
                    stream_id, current + i, len(self._log) + 1, e.event_id.bytes, e.event_type, e.schema_version,
                    e.data, e.metadata, at,
                )
                self._log.append(stored)
                stream.append(stored)
                self._ids[e.event_id] = (stream_id, stored.version, stored.position)
            self._versions[stream_id] = current + len(events)
            return AppendResult(
                stream_id=stream_id,
                first_version=current + 1,
                last_version=current + len(events),
                last_position=len(self._log) if events else None,
                recorded_at=recorded_at if events else None,
            )

    def _retry(self, stream_id: str, events: list[PreparedEvent]) -> AppendResult:
        found = [(e.event_id, *self._ids[e.event_id][:2]) for e in events if e.event_id in self._ids]
        result = match_retry(stream_id, events, found)
        last = self._log[self._ids[events[-1].event_id][2] - 1]
        assert last is not None  # a retry's events are stored, so not truncated
        return msgspec.structs.replace(result, last_position=last.position, recorded_at=moment(last.recorded_at))

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[StoredEvent]:
        with self._lock:
            selected = [
                e for e in self._streams.get(stream_id, ())
                if e.version > after and (upto is None or e.version <= upto)
            ]
        if reverse:
            selected.reverse()
        return selected[:limit] if limit is not None else selected

    def _stream_version(self, stream_id: str) -> int:
        return self._versions.get(stream_id, 0)

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[list[StoredEvent]]:
        produced = 0
        position = after
        while limit is None or produced < limit:
            with self._lock:
                page = [e for e in self._log[position : position + page_size] if e is not None]
                end = min(len(self._log), position + page_size)
            if end <= position:
                return
            position = end
            if limit is not None:
                page = page[: limit - produced]
            produced += len(page)
            if page:
                yield page

    def head_position(self) -> int:
        return len(self._log)

    @property
    def split_origin(self) -> str:
        return self._origin

    def _split(self, count: int) -> list[StoreSplit]:
        with self._lock:
            sizes = sorted((stream_id, len(events)) for stream_id, events in self._streams.items())
            upto = len(self._log)
        return plan(self.url, self._origin, upto, [(r,) for r in stream_ranges(sizes, count)])

    def _read_split(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        for low, high in split.ranges:
            with self._lock:
                streams = sorted(s for s in self._streams if in_range(s, low, high))
            for stream_id in streams:
                with self._lock:
                    events = [e for e in self._streams[stream_id] if e.position <= split.upto]
                for start in range(0, len(events), page_size):
                    yield events[start : start + page_size]

    def schema_census(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(Counter((e.event_type, e.schema_version) for e in self._log if e is not None))

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshots.setdefault(snapshot.stream_id, {})[snapshot.version] = snapshot

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        with self._lock:
            versions = [v for v in self._snapshots.get(stream_id, {}) if upto is None or v <= upto]
            return self._snapshots[stream_id][max(versions)] if versions else None

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        with self._lock:
            return sorted(self._snapshots.get(stream_id, {}), reverse=True)

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        with self._lock:
            for v in versions:
                self._snapshots.get(stream_id, {}).pop(v, None)

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        with self._lock:
            stream = self._streams.get(stream_id, [])
            doomed = [e for e in stream if e.version < before_version]
            for e in doomed:
                self._log[e.position - 1] = None
                del self._ids[uuid.UUID(bytes=e.event_id)]
            self._streams[stream_id] = [e for e in stream if e.version >= before_version]
            return len(doomed)
