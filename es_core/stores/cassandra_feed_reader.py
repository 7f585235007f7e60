"""The reader's side of the global feed: reading it, finding its head, settling it (closing slots
and fencing partitions), and reporting on it. See ``cassandra_feed`` for the protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from cassandra.concurrent import execute_concurrent

from .cassandra_clock import BoundedClock
from .cassandra_errors import translate_driver_error
from .cassandra_feed import (
    POSITION_AT,
    SLOT_SHIFT,
    FeedHole,
    FeedIndex,
    FeedStatus,
    position_at,
    position_us,
    shard_of,
    slot_end,
    slot_of,
)
from .cassandra_statements import CREATE_FENCE, FENCE, HEAD_POSITION, RAISE_FENCE, SELECT_FROM

_FENCE_ROUNDS = 8  # a fence raced by other readers' fences is read again and retried


class FeedReader:
    """One store handle's reading and settling of the feed (thread-safe)."""

    def __init__(self, index: FeedIndex, prepare: Callable[[str], Any], clock: BoundedClock, *, lease_us: int) -> None:
        self._index = index
        self._session = index.session
        self._q = prepare
        self.clock = clock
        self.lease_us = lease_us
        self._lock = threading.Lock()
        self._settled = 0
        self._persisted = 0
        self.holes: list[FeedHole] = []

    # -- reading -----------------------------------------------------------------------------

    def read(self, after: int) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        """Event rows with position > ``after``, one sorted list per slot: every announced
        partition read from its first announced version until it passes the slot."""
        select = self._q(SELECT_FROM)
        for slot, shards in self._index.slots(slot_of(after + 1)):
            low, high = max(after, (slot << SLOT_SHIFT) - 1), slot_end(slot)
            parts = self._index.announced(slot, shards)
            calls = []
            for (stream_id, bucket), first in parts.items():
                statement = select.bind((stream_id, bucket, first))
                statement.fetch_size = 200
                calls.append((statement, ()))
            rows: list[tuple[str, tuple[Any, ...]]] = []
            results = execute_concurrent(self._session, calls, concurrency=64, raise_on_first_error=True)
            for (stream_id, _), (_, result) in zip(parts, results, strict=True):
                for row in result:  # later pages are fetched as the iteration goes
                    position = row[POSITION_AT]
                    if position is None or position <= low:
                        continue  # a static-only row, or an event from before the slot
                    if position > high:
                        break  # a stream's positions rise with its versions: the rest is later
                    rows.append((stream_id, row))
            rows.sort(key=lambda item: item[1][POSITION_AT])
            yield rows

    def head(self) -> int:
        """The newest event's position (0 if none): the highest ``head_position`` among the
        partitions of the newest slot that has any event."""
        statics = self._q(HEAD_POSITION)
        for slot, shards in self._index.slots(0, descending=True):
            calls = [(statics, key) for key in self._index.announced(slot, shards)]
            best = 0
            for _, result in execute_concurrent(self._session, calls, concurrency=64, raise_on_first_error=True):
                row = result.one()
                if row is not None and row[0] is not None and slot_of(row[0]) >= slot:
                    best = max(best, row[0])
            if best:
                return int(best)
        return 0

    # -- settling ----------------------------------------------------------------------------

    def _settled_hint(self) -> int:
        row = self._session.execute(self._q("SELECT value FROM {ks}.store_settings WHERE name = 'feed_settled'")).one()
        return int(row[0]) if row and row[0] else 0

    def _start(self) -> int:
        hint = self._settled_hint()
        with self._lock:
            self._settled = max(self._settled, hint)
            self._persisted = max(self._persisted, hint)
            return self._settled

    def settle(self, *, wait: bool = True) -> int:
        """Close the slots up to the head's (``wait``: after giving appends in that slot up to the
        lease to finish; else only slots this handle's clock has seen end; never slots ahead of
        the cluster's clock plus the skew allowance), fence what was announced in them, and
        return the settled position (never past the head)."""
        start = self._start()
        head = self.head()
        if head <= start:
            return head
        first, last = slot_of(start + 1), slot_of(head)
        if wait:
            delay = min(position_us(slot_end(last)) + 1 - self.clock.now_us(), self.lease_us)
            if delay > 0:
                time.sleep(delay / 1e6)
        else:
            last = min(last, slot_of(position_at(self.clock.now_us())) - 1)
        # never close slots ahead of the cluster's clock (plus the allowance): a head pushed
        # further by a writer outside the bounds waits for time to reach it, and drags no one
        last = min(last, slot_of(position_at(self.clock.cluster.now_us() + self.clock.skew_us)))
        if last < first:
            return min(start, head)
        holes = self._close_and_fence(first, last)
        self.holes = holes
        settled = max(start, min(h.from_position for h in holes) - 1) if holes else slot_end(last)
        with self._lock:
            self._settled = max(self._settled, settled)
            settled = self._settled
            persist = settled > self._persisted
            if persist:
                self._persisted = settled
        if persist:  # any value once settled stays settled, so racing writers of this row are harmless
            self._session.execute(
                self._q("UPDATE {ks}.store_settings SET value = ? WHERE name = 'feed_settled'"), (settled,)
            )
        return min(settled, head)

    def _close_and_fence(self, first: int, last: int) -> list[FeedHole]:
        """Close slots up to ``last`` in every shard, then fence every partition announced in the
        slots ``first``..``last``; returns what could not be closed or fenced."""
        shards = range(self._index.shards)
        closing = [(self._index.closing(shard, last), ()) for shard in shards]
        outcomes = execute_concurrent(self._session, closing, concurrency=64, raise_on_first_error=False)
        unclosed = [
            FeedHole(None, None, shard, first << SLOT_SHIFT, _error(result))
            for shard, (ok, result) in zip(shards, outcomes, strict=True)
            if not ok
        ]
        if unclosed:  # nothing after the last settled position is safe until every shard is closed
            return unclosed
        slots: dict[tuple[str, int], tuple[int, int]] = {}  # partition -> (first, last) slot announced in
        for slot, with_announcements in self._index.slots(first, last):
            for key in self._index.announced(slot, with_announcements):
                slots[key] = (slots[key][0], slot) if key in slots else (slot, slot)
        return self._fence(slots)

    def _fence(self, slots: dict[tuple[str, int], tuple[int, int]]) -> list[FeedHole]:
        """Raise each partition's fence to the end of the last slot it was announced in: a write
        into a partition at a closed slot needs an announcement there, which this reader saw,
        so nothing can land below that fence later (and a fence already that high, left by an
        earlier settle, is not written again)."""
        keys = list(slots)
        fences = execute_concurrent(
            self._session, [(self._q(FENCE), k) for k in keys], concurrency=64, raise_on_first_error=False
        )
        todo, holes = [], []
        for key, (ok, result) in zip(keys, fences, strict=True):
            if not ok:
                holes.append(self._hole(key, slots[key][0], result))
                continue
            row = result.one()
            current = row[0] if row is not None else None
            if current is None or current < slot_end(slots[key][1]):
                todo.append((key, current))
        for _ in range(_FENCE_ROUNDS):
            if not todo:
                break
            calls: list[tuple[Any, tuple[Any, ...]]] = []
            for key, current in todo:
                target = slot_end(slots[key][1])
                if current is None:
                    calls.append((self._q(CREATE_FENCE), (target, *key)))
                else:
                    calls.append((self._q(RAISE_FENCE), (target, *key, target)))
            results = execute_concurrent(self._session, calls, concurrency=32, raise_on_first_error=False)
            again = []
            for (key, _), (ok, result) in zip(todo, results, strict=True):
                if not ok:
                    holes.append(self._hole(key, slots[key][0], result))
                    continue
                if result.was_applied:
                    continue
                current = dict(zip(result.column_names, result.one(), strict=True)).get("fence")
                if current is None or current < slot_end(slots[key][1]):
                    again.append((key, current))
            todo = again
        for key, _ in todo:
            holes.append(self._hole(key, slots[key][0], "the fence kept changing"))
        return holes

    def _hole(self, key: tuple[str, int], slot: int, error: object) -> FeedHole:
        return FeedHole(key[0], key[1], shard_of(key[0], self._index.shards), slot << SLOT_SHIFT, _error(error))

    # -- reporting ---------------------------------------------------------------------------

    def status(self) -> FeedStatus:
        start = self._start()
        head = self.head()
        unsettled: set[tuple[str, int]] = set()
        first_unsettled = None
        for slot, shards in self._index.slots(slot_of(start + 1)):
            first_unsettled = slot if first_unsettled is None else first_unsettled
            unsettled.update(self._index.announced(slot, shards))
        settled = min(start, head) if head else start
        # nothing settled yet: the lag runs from the first second written
        since = settled if settled or first_unsettled is None else first_unsettled << SLOT_SHIFT
        lag = max(0.0, (position_us(head) - position_us(since)) / 1e6) if head > settled else 0.0
        self.clock.now_us()  # refreshes the offset
        cluster = self.clock.cluster.now_us()
        return FeedStatus(
            settled=settled,
            head=head,
            lag_seconds=round(lag, 6),
            unsettled_partitions=len(unsettled),
            holes=list(self.holes),
            clock_offset_seconds=round(self.clock.offset_us / 1e6, 6),
            clock_out_of_bounds=self.clock.out_of_bounds,
            head_ahead_seconds=round(max(0.0, (position_us(head) - cluster) / 1e6), 6) if head else 0.0,
        )


def _error(error: object) -> str:
    if isinstance(error, BaseException):
        error = translate_driver_error(error) or error
    return str(error)
