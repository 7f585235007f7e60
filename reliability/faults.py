"""A store that fails on demand: a real ``EventStore`` around another one, not a mock.

It is a backend like any other: its backend methods pass every call through to the wrapped
store's (the public methods, validation and decoding stay ``EventStore``'s own), until told to
fail. Failure modes:

* ``"unavailable"``          every call raises ``StoreUnavailableError`` (connection refused, no replica)
* ``"timeout"``              every call raises ``StoreTimeoutError`` and nothing is written
* ``"timeout_after_write"``  appends are written, then ``StoreTimeoutError`` is raised: the reply
                             was lost, the write landed (the case that tempts clients to duplicate)

``fail(mode, calls=N)`` fails the next N calls only; ``heal()`` ends the outage. ``failures``
counts the calls that failed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Literal

from es_core import (
    AppendResult,
    EventStore,
    ExpectedVersion,
    PayloadRow,
    PreparedEvent,
    Snapshot,
    StoredEvent,
    StoreTimeoutError,
    StoreUnavailableError,
)
from es_core.splits import StoreSplit

Mode = Literal["unavailable", "timeout", "timeout_after_write"]
MODES: tuple[Mode, ...] = ("unavailable", "timeout", "timeout_after_write")


class FlakyStore(EventStore):
    def __init__(self, inner: EventStore) -> None:
        super().__init__(clock=inner.clock, payload_limit=inner.payload_limit)
        self.inner = inner
        self.scheme = inner.scheme
        self.url = inner.url
        self.mode: Mode | None = None
        self.remaining: int | None = None  # failing calls left, None: until healed
        self.failures = 0
        self.calls = 0
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------

    def fail(self, mode: Mode, *, calls: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown failure mode {mode!r}; known: {', '.join(MODES)}")
        with self._lock:
            self.mode, self.remaining = mode, calls

    def heal(self) -> None:
        with self._lock:
            self.mode, self.remaining = None, None

    @property
    def failing(self) -> bool:
        return self.mode is not None

    def _trip(self, *, write: bool = False) -> Mode | None:
        """The failure this call suffers (None: it passes), counting it."""
        with self._lock:
            self.calls += 1
            mode = self.mode
            if mode is None or (mode == "timeout_after_write" and not write):
                return None
            self.failures += 1
            if self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode, self.remaining = None, None
            return mode

    def _check(self, operation: str) -> None:
        mode = self._trip()
        if mode == "unavailable":
            raise StoreUnavailableError(f"injected: the store is unavailable ({operation})")
        if mode == "timeout":
            raise StoreTimeoutError(f"injected: the store timed out ({operation})")

    # -- the store, passed through -------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        mode = self._trip(write=True)
        if mode == "unavailable":
            raise StoreUnavailableError("injected: the store is unavailable (append)")
        if mode == "timeout":
            raise StoreTimeoutError("injected: the store timed out before the append was written")
        result = self.inner._append(stream_id, events, expected, recorded_at)
        if mode == "timeout_after_write":
            raise StoreTimeoutError("injected: the append was written, then its reply timed out")
        return result

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[StoredEvent]:
        self._check("read")
        return self.inner._read_stream(stream_id, after, upto, limit, reverse)

    def _read_stream_payloads(self, stream_id: str, after: int, upto: int | None) -> list[PayloadRow]:
        self._check("read")
        return self.inner._read_stream_payloads(stream_id, after, upto)

    def _stream_version(self, stream_id: str) -> int:
        self._check("version")
        return self.inner._stream_version(stream_id)

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[list[StoredEvent]]:
        self._check("read_all")
        return self.inner._read_all(after, limit, page_size)

    def head_position(self) -> int:
        self._check("head")
        return self.inner.head_position()

    def schema_census(self) -> dict[tuple[str, int], int]:
        self._check("census")
        return self.inner.schema_census()

    @property
    def split_origin(self) -> str:
        return self.inner.split_origin

    def _split(self, count: int) -> list[StoreSplit]:
        self._check("split")
        return self.inner.split(count)

    def _read_split(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        self._check("read_split")
        return self.inner._read_split(split, page_size)

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        self._check("snapshot")
        self.inner._save_snapshot(snapshot)

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        self._check("snapshot")
        return self.inner._latest_snapshot(stream_id, upto)

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        self._check("snapshot")
        return self.inner._snapshot_versions(stream_id)

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        self._check("snapshot")
        self.inner._delete_snapshots(stream_id, versions)

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        self._check("truncate")
        return self.inner._truncate_stream(stream_id, before_version)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"FlakyStore({self.inner!r}, mode={self.mode})"
