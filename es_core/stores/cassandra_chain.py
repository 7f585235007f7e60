"""A stream's partitions in the Cassandra store: their static heads, the chain they form, and the
work done per partition (inspection, truncation).

Each partition's static ``head`` is the stream's version after the latest append into it, and
``head // bucket_width`` names the bucket of the next append, so a stream's partitions form a
chain from bucket 0. A handle remembers the last partition it saw of each stream (a lower bound:
the chain only grows), so finding a stream's version is usually one small read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cassandra.concurrent import execute_concurrent

from ..limits import MAX_EVENTS_PER_APPEND
from .base import micros
from .cassandra_statements import STATICS

_TAILS_KEPT = 100_000  # streams whose last partition a handle remembers (then it starts over)


class Statics(NamedTuple):
    head: int | None
    head_id: Any
    head_position: int | None
    fence: int | None


class Chain:
    """The partitions of streams, read through one session (``live`` raises once the store is closed)."""

    def __init__(self, live: Callable[[], Any], prepare: Callable[[str], Any], width: int) -> None:
        self._live = live
        self._q = prepare
        self.width = width
        self._tails: dict[str, int] = {}  # stream -> a bucket known to hold its events (a lower bound)

    def statics(self, stream_id: str, buckets: list[int]) -> dict[int, Statics]:
        """Static columns of the stream's partitions among ``buckets`` that hold any events."""
        rows = self._live().execute(self._q(STATICS), (stream_id, buckets))
        return {r[1]: Statics(r[2], r[3], r[4], r[5]) for r in rows if r[2] is not None}

    def locate(self, stream_id: str, version: int) -> tuple[int, Statics] | None:
        """The partition holding ``version``: the lowest with head >= version among the buckets
        an append containing it can have started in. None if the stream is not that long."""
        width = self.width
        lowest = max(0, version - MAX_EVENTS_PER_APPEND) // width
        found = self.statics(stream_id, list(range(lowest, (version - 1) // width + 1)))
        holders = [b for b, s in found.items() if s.head is not None and s.head >= version]
        return (min(holders), found[min(holders)]) if holders else None

    def chain(self, stream_id: str, start: int = 0, upto: int | None = None) -> list[tuple[int, Statics]]:
        """The stream's partitions from ``start``, in order: each one's head names the bucket of
        the next append, so the partitions form a chain (``upto``: stop at the one holding it)."""
        chain: list[tuple[int, Statics]] = []
        bucket: int | None = start
        while bucket is not None:
            statics = self.statics(stream_id, [bucket]).get(bucket)
            if statics is None or statics.head is None:
                break
            chain.append((bucket, statics))
            following = statics.head // self.width
            if following == bucket or (upto is not None and statics.head >= upto):
                break
            bucket = following
        return chain

    def tail(self, stream_id: str) -> int:
        """The stream's version, following the chain from the last partition this handle saw."""
        hint = self._tails.get(stream_id, 0)
        chain = self.chain(stream_id, hint)
        if not chain and hint:
            chain = self.chain(stream_id, 0)
        if not chain:
            return 0
        bucket, statics = chain[-1]
        self.remember_tail(stream_id, bucket)
        return int(statics.head or 0)

    def remember_tail(self, stream_id: str, bucket: int) -> None:
        if bucket:
            if len(self._tails) > _TAILS_KEPT:
                self._tails.clear()
            self._tails[stream_id] = bucket

    # -- per-partition work --------------------------------------------------------------------

    def describe(self, stream_id: str) -> list[dict[str, int]]:
        """One dict per partition of the stream: bucket, rows, first and last version, head."""
        chain = self.chain(stream_id)
        statement = self._q(
            "SELECT COUNT(version), MIN(version), MAX(version) FROM {ks}.events WHERE stream_id = ? AND bucket = ?"
        )
        results = execute_concurrent(
            self._live(), [(statement, (stream_id, b)) for b, _ in chain], raise_on_first_error=True
        )
        out = []
        for (bucket, statics), (_, rows) in zip(chain, results, strict=True):
            count, low, high = rows.one()
            out.append(
                {"bucket": bucket, "rows": int(count), "first_version": low, "last_version": high, "head": statics.head}
            )
        return out

    def truncate(self, stream_id: str, before_version: int) -> int:
        """Range-delete the stream's rows below ``before_version`` (never whole partitions, so the
        static heads survive); returns how many rows went."""
        session = self._live()
        buckets = [b for b, _ in self.chain(stream_id, upto=before_version)]
        counting = self._q(
            "SELECT COUNT(version), MAX(WRITETIME(event_type)) FROM {ks}.events"
            " WHERE stream_id = ? AND bucket = ? AND version < ?"
        )
        counts = execute_concurrent(
            session, [(counting, (stream_id, b, before_version)) for b in buckets], raise_on_first_error=True
        )
        deletes, total = [], 0
        delete = self._q("DELETE FROM {ks}.events USING TIMESTAMP ? WHERE stream_id = ? AND bucket = ? AND version < ?")
        for bucket, (_, rows) in zip(buckets, counts, strict=True):
            count, written = rows.one()
            if count:
                # conditional writes carry the coordinator's timestamps: delete after them
                stamp = max(micros(datetime.now(UTC)), (written or 0) + 1)
                deletes.append((delete, (stamp, stream_id, bucket, before_version)))
                total += count
        execute_concurrent(session, deletes, raise_on_first_error=True)
        return total
