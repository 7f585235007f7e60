"""The writer's side of the global feed: positions, and announcing them before an append.

See ``cassandra_feed`` for the protocol and why it needs no clock. A handle announces each
(partition, slot) it appends into once, then reads the shard's closed marker; later appends of the
handle into the same partition and slot cost nothing extra (the fence covers them).
"""

from __future__ import annotations

import logging
import threading

from cassandra.concurrent import execute_concurrent

from ..errors import StoreError, StoreUnavailableError
from .cassandra_clock import BoundedClock
from .cassandra_errors import DRIVER_ERRORS
from .cassandra_feed import EPOCH_US, ERA_SHIFT, FeedIndex, position_us, shard_of, slot_end, slot_of
from .cassandra_writers import RENEW_BEFORE_US, WRITER_BITS, Claim, WriterNumbers

log = logging.getLogger(__name__)

PLACE_ATTEMPTS = 8
"""Closed slots a placement may step over: each step lands past the newest closed slot."""
_ANNOUNCED_KEPT = 50_000  # (partition, slot) pairs remembered before old slots are forgotten


class FeedWriter:
    """One store handle's positions and announcements (thread-safe)."""

    def __init__(self, index: FeedIndex, numbers: WriterNumbers, clock: BoundedClock) -> None:
        self._index = index
        self._numbers = numbers
        self.clock = clock
        self._lock = threading.Lock()
        self._claim: Claim | None = None
        self._cursor = 0  # the last microsecond handed out
        self._closed_seen: dict[int, int] = {}  # shard -> highest closed slot this handle has read
        self._announced: dict[tuple[str, int, int], int] = {}  # (stream, bucket, slot) -> first version
        self._indexed: set[tuple[int, int]] = set()  # (shard, slot) entries written to feed_shard_slots
        self._eras: set[tuple[int, int]] = set()  # (shard, era) entries written to feed_shard_eras
        self._released = False

    @property
    def writer(self) -> int | None:
        """The writer number this handle holds (None before its first append)."""
        claim = self._claim
        return claim.writer if claim is not None else None

    # -- positions ---------------------------------------------------------------------------

    def allocate(self, count: int) -> list[int]:
        """``count`` consecutive positions of this handle (one microsecond apart)."""
        with self._lock:
            if self._released:
                raise StoreError("the store is closed")
            claim = self._claim or self._claim_number()
            now = self.clock.now_us()
            while True:
                start = max(now, self._cursor + 1, claim.floor_us + 1)
                end = start + count - 1
                if end <= claim.reserved_us and claim.reserved_us - now >= RENEW_BEFORE_US:
                    break
                if not self._numbers.renew(claim, end):  # another handle took the number over
                    claim = self._claim_number()
            self._cursor = end
        base = (start - EPOCH_US) << WRITER_BITS | claim.writer
        step = 1 << WRITER_BITS
        return [base + i * step for i in range(count)]

    def bump(self, position: int) -> None:
        """Never hand out a position at or below ``position`` again (a stream or fence has it)."""
        with self._lock:
            self._cursor = max(self._cursor, position_us(position))

    def _claim_number(self) -> Claim:
        claim = self._numbers.claim()
        self._claim = claim
        return claim

    def release(self) -> None:
        """Give the writer number back (``close()``). Best effort: a claim that cannot be
        released frees itself when its reservation runs out."""
        with self._lock:
            self._released = True
            claim, self._claim = self._claim, None
            if claim is None:
                return
            try:
                self._numbers.release(claim, self._cursor)
            except DRIVER_ERRORS as exc:
                log.warning("feed writer number %d not released (%s); it frees itself later", claim.writer, exc)

    # -- announcing ----------------------------------------------------------------------------

    def place(self, stream_id: str, bucket: int, count: int, first_version: int) -> list[int]:
        """Positions for an append of ``count`` events into partition (stream, bucket) from
        ``first_version``, announced in slots that were open after the announcement was durable."""
        shard = shard_of(stream_id, self._index.shards)
        for _ in range(PLACE_ATTEMPTS):
            positions = self.allocate(count)
            slots = sorted({slot_of(positions[0]), slot_of(positions[-1])})
            todo = [s for s in slots if self._announced.get((stream_id, bucket, s), first_version + 1) > first_version]
            if not todo:
                return positions
            if slots[0] <= self._closed_seen.get(shard, -1):
                self.bump(slot_end(self._closed_seen[shard]))
                continue
            self._announce(shard, stream_id, bucket, todo, first_version)
            closed = self._index.closed_upto(shard)  # only after the announcements are durable
            with self._lock:
                self._closed_seen[shard] = max(closed, self._closed_seen.get(shard, -1))
            if closed >= slots[0]:  # a reader closed the slot first: move past it
                self.bump(slot_end(closed))
                continue
            self._remember(shard, stream_id, bucket, todo, first_version)
            return positions
        raise StoreUnavailableError(
            f"no open feed slot for {stream_id!r} after {PLACE_ATTEMPTS} tries: readers keep closing slots "
            "ahead of this handle's positions"
        )

    def _announce(self, shard: int, stream_id: str, bucket: int, slots: list[int], first_version: int) -> None:
        calls = []
        for slot in slots:
            calls.append(self._index.announcement(shard, slot, stream_id, bucket, first_version))
            if (shard, slot) not in self._indexed:
                calls.append(self._index.slot_entry(shard, slot))
                if (shard, slot >> ERA_SHIFT) not in self._eras:
                    calls.append(self._index.era_entry(shard, slot >> ERA_SHIFT))
        session = self._index.session
        if len(calls) == 1:
            session.execute(*calls[0])
        else:
            execute_concurrent(session, calls, raise_on_first_error=True)

    def _remember(self, shard: int, stream_id: str, bucket: int, slots: list[int], first_version: int) -> None:
        with self._lock:
            for slot in slots:
                key = (stream_id, bucket, slot)
                self._announced[key] = min(first_version, self._announced.get(key, first_version))
                self._indexed.add((shard, slot))
                self._eras.add((shard, slot >> ERA_SHIFT))
            if len(self._announced) > _ANNOUNCED_KEPT:  # old slots are never written again by this handle
                newest = max(k[2] for k in self._announced)
                self._announced = {k: v for k, v in self._announced.items() if k[2] >= newest - 2}
                self._indexed = {k for k in self._indexed if k[1] >= newest - 2}
