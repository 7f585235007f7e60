"""The global feed of the Cassandra store: positions, announcements, fencing, settling.

Positions
    ``position = (microseconds since 2020-01-01 UTC) << 12 | writer``: a 63-bit int that orders
    events by the wall clock of the store handle that appended them. ``writer`` is a 12-bit
    number each handle claims in ``feed_writers`` (a TTL'd conditional insert it renews), so
    two handles never hand out the same position, and a handle's clock cursor only moves
    forward. An append of n events takes n consecutive microseconds. A stream's positions rise
    with its versions: the conditional batch checks ``head_position < first new position``.

Announcements (what a writer does besides its conditional batch)
    Before its first append into a partition within a *slot* (2**20 µs, about a second of
    positions), a handle writes ``feed_partitions(slot, stream_id, bucket, first_version)``
    and waits for it; if that took longer than the lease (``feed_lease_ms``), it takes new
    positions. So every partition that may receive an event with a position in a slot is
    listed under that slot within ``lease`` of the position's time. Later appends to the same
    partition in the same slot write nothing extra.

Fences and the settled position (what a reader does)
    Every event partition has a static ``fence``; a conditional batch only applies if
    ``fence < its first position``. To declare positions up to T settled, a reader waits until
    T is older than ``lease + clock_skew`` (all partitions that may hold positions <= T are
    announced by then), raises the fence of each partition announced since the last settled
    position to T with a conditional write, and stops. After that no event at or before T can
    land anywhere: a batch that was still in flight with an earlier position is refused and
    retried by its writer with a new position, and a batch the cluster accepted but had not
    finished is completed by the fence's own Paxos round. Reading the announced partitions
    then returns every event up to T, exactly once, in position order.

    A partition that cannot be fenced (replicas down) holds the settled position just before
    its slot and is reported as a hole by ``feed_status``; nothing is skipped. A writer that
    crashes leaves nothing to clean up: its batch either landed (and is read) or can no longer
    land once fenced. The persisted settled position (``store_settings``) lets readers share
    the work: a reader whose target is already settled fences nothing.

Assumptions: clocks of writers and readers differ by less than ``clock_skew_ms``; conditional
writes use one serial consistency level (``LOCAL_SERIAL`` fences within one data centre).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cassandra.concurrent import execute_concurrent

from ..errors import StoreUnavailableError
from .cassandra_errors import translate_driver_error

EPOCH_US = 1_577_836_800_000_000
"""2020-01-01T00:00:00Z in microseconds since the Unix epoch: positions fit 63 bits until 2091."""
WRITER_BITS = 12
WRITERS = 1 << WRITER_BITS
SLOT_SHIFT = WRITER_BITS + 20
"""A slot is 2**20 microseconds (~1.05 s) of positions: one ``feed_partitions`` partition."""
ERA_SHIFT = 15
"""An era lists 2**15 slots (~9.5 hours) in ``feed_slots``."""

WRITER_TTL_S = 3600
WRITER_RENEW_S = 1800  # renewed well before the TTL runs out, so a claim is never used after expiry

POSITION_AT = 7  # index of ``position`` in the event rows the store reads (cassandra_schema.EVENT_COLUMNS)


def now_us() -> int:
    return time.time_ns() // 1000


def position_us(position: int) -> int:
    """The wall-clock microsecond a position was allocated at."""
    return (position >> WRITER_BITS) + EPOCH_US


def position_at(micros: int) -> int:
    """The highest position any writer could have allocated at wall-clock ``micros``."""
    return ((micros - EPOCH_US) << WRITER_BITS) | (WRITERS - 1)


def slot_of(position: int) -> int:
    return position >> SLOT_SHIFT


def slot_end(slot: int) -> int:
    return ((slot + 1) << SLOT_SHIFT) - 1


class LeaseExpired(Exception):
    """An announcement became durable later than the lease allows: take new positions."""


@dataclass(frozen=True)
class FeedHole:
    """A partition the last settle could not fence: it holds the settled position before
    ``from_position`` until a later settle succeeds."""

    stream_id: str
    bucket: int
    from_position: int
    error: str


@dataclass(frozen=True)
class FeedStatus:
    """The feed as this handle sees it; lag and holes are reported apart.

    ``settled``: no event at or before it can still appear. ``head``: the newest event's
    position. ``lag_seconds``: how far the settled position trails the head in time (0 when
    they meet). ``unsettled_partitions``: partitions announced in the slots (seconds) after
    the settled one: appends under way or not yet settled. ``holes``: partitions the last
    settle could not fence, each holding the settled position before its slot."""

    settled: int
    head: int
    lag_seconds: float
    unsettled_partitions: int
    holes: list[FeedHole] = field(default_factory=list)


class Feed:
    """One store handle's side of the feed."""

    def __init__(
        self,
        session: Any,
        prepare: Callable[[str], Any],
        select_from: str,
        *,
        lease_us: int,
        skew_us: int,
        request_timeout: float,
        clock_us: Callable[[], int] = now_us,
    ) -> None:
        self._session = session
        self._now = clock_us  # wall-clock microseconds (tests give a handle a lagging clock)
        self._q = prepare
        self._select_from = select_from  # event rows of a partition from a version on
        self.lease_us = lease_us
        self.skew_us = skew_us
        self._timeout = request_timeout
        self._lock = threading.Lock()
        self._owner = uuid.uuid4()
        self._writer: int | None = None
        self._claimed_at = (0.0, 0.0)  # (monotonic, wall) seconds
        self._cursor = 0  # the last wall-clock microsecond handed out
        self._announced: dict[tuple[str, int, int], int] = {}  # (stream, bucket, slot) -> first version
        self._slots: set[int] = set()
        self._eras: set[int] = set()
        self._settled = 0
        self._persisted = 0
        self.holes: list[FeedHole] = []

    # -- positions ---------------------------------------------------------------------------

    def allocate(self, count: int) -> list[int]:
        with self._lock:
            writer = self._writer_number()
            start = max(self._now(), self._cursor + 1)
            self._cursor = start + count - 1
        base = (start - EPOCH_US) << WRITER_BITS | writer
        step = 1 << WRITER_BITS
        return [base + i * step for i in range(count)]

    def bump(self, position: int) -> None:
        """Never hand out a position at or below ``position`` again (a stream already has it)."""
        with self._lock:
            self._cursor = max(self._cursor, position_us(position))

    def _writer_number(self) -> int:
        """Under the lock: this handle's writer number, claimed or renewed as needed."""
        # the older of two clocks: the monotonic one stands still while the machine sleeps
        age = max(time.monotonic() - self._claimed_at[0], time.time() - self._claimed_at[1])
        if self._writer is not None and age < WRITER_RENEW_S:
            return self._writer
        if self._writer is not None:
            renewed = self._session.execute(
                self._q("UPDATE {ks}.feed_writers USING TTL ? SET owner = ? WHERE writer = ? IF owner = ?"),
                (WRITER_TTL_S, self._owner, self._writer, self._owner),
            )
            if renewed.was_applied:
                self._claimed_at = (time.monotonic(), time.time())
                return self._writer
        claim = self._q("INSERT INTO {ks}.feed_writers (writer, owner) VALUES (?, ?) IF NOT EXISTS USING TTL ?")
        for _ in range(64):
            candidate = random.randrange(WRITERS)
            if self._session.execute(claim, (candidate, self._owner, WRITER_TTL_S)).was_applied:
                self._writer, self._claimed_at = candidate, (time.monotonic(), time.time())
                # a clock that stepped back must not hand out positions readers have settled
                hint = self._settled_hint()
                if hint:
                    self._cursor = max(self._cursor, position_us(hint) + 1)
                return candidate
        raise StoreUnavailableError("no free feed writer number: 4096 store handles hold one")

    # -- announcing --------------------------------------------------------------------------

    def announce(self, stream_id: str, bucket: int, positions: list[int], first_version: int) -> None:
        """List the partition under every slot its positions fall in (unless this handle did,
        for this version or an earlier one); raises ``LeaseExpired`` when that came too late."""
        calls: list[tuple[Any, tuple[Any, ...]]] = []
        done = []
        for slot in {slot_of(positions[0]), slot_of(positions[-1])}:
            key = (stream_id, bucket, slot)
            if self._announced.get(key, first_version + 1) <= first_version:
                continue
            done.append(key)
            calls.append(
                (
                    self._q(
                        "INSERT INTO {ks}.feed_partitions (slot, stream_id, bucket, first_version) VALUES (?, ?, ?, ?)"
                    ),
                    (slot, stream_id, bucket, first_version),
                )
            )
            if slot not in self._slots:
                era = slot >> ERA_SHIFT
                calls.append((self._q("INSERT INTO {ks}.feed_slots (era, slot) VALUES (?, ?)"), (era, slot)))
                if era not in self._eras:
                    calls.append((self._q("INSERT INTO {ks}.feed_eras (shard, era) VALUES (0, ?)"), (era,)))
        if not calls:
            return
        if len(calls) == 1:
            self._session.execute(*calls[0])
        else:
            execute_concurrent(self._session, calls, raise_on_first_error=True)
        if self._now() - position_us(positions[0]) > self.lease_us:
            raise LeaseExpired
        with self._lock:
            for key in done:
                self._announced[key] = min(first_version, self._announced.get(key, first_version))
                self._slots.add(key[2])
                self._eras.add(key[2] >> ERA_SHIFT)
            if len(self._announced) > 50_000:  # old slots are never written again by this handle
                newest = max(k[2] for k in self._announced)
                self._announced = {k: v for k, v in self._announced.items() if k[2] >= newest - 2}
                self._slots = {s for s in self._slots if s >= newest - 2}

    # -- reading -----------------------------------------------------------------------------

    def _slots_from(self, slot: int, last: int | None = None) -> Iterator[int]:
        eras = self._session.execute(
            self._q("SELECT era FROM {ks}.feed_eras WHERE shard = 0 AND era >= ?"), (slot >> ERA_SHIFT,)
        )
        for (era,) in eras:
            if last is not None and era > last >> ERA_SHIFT:
                return
            rows = self._session.execute(
                self._q("SELECT slot FROM {ks}.feed_slots WHERE era = ? AND slot >= ?"), (era, slot)
            )
            for (found,) in rows:
                if last is not None and found > last:
                    return
                yield found

    def partitions(self, slot: int) -> dict[tuple[str, int], int]:
        """Partitions announced under ``slot``, each with its lowest announced version."""
        rows = self._session.execute(
            self._q("SELECT stream_id, bucket, first_version FROM {ks}.feed_partitions WHERE slot = ?"), (slot,)
        )
        found: dict[tuple[str, int], int] = {}
        for stream_id, bucket, first in rows:
            key = (stream_id, bucket)
            found[key] = min(first, found.get(key, first))
        return found

    def read(self, after: int) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        """Event rows with position > ``after``, one sorted list per slot: every announced
        partition read from its first announced version until it passes the slot."""
        select = self._q(self._select_from)
        for slot in self._slots_from(slot_of(after + 1)):
            low, high = max(after, (slot << SLOT_SHIFT) - 1), slot_end(slot)
            parts = self.partitions(slot)
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
        eras = self._session.execute(self._q("SELECT era FROM {ks}.feed_eras WHERE shard = 0 ORDER BY era DESC"))
        statics = self._q("SELECT head_position FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1")
        for (era,) in eras:
            slots = self._session.execute(
                self._q("SELECT slot FROM {ks}.feed_slots WHERE era = ? ORDER BY slot DESC"), (era,)
            )
            for (slot,) in slots:
                calls = [(statics, key) for key in self.partitions(slot)]
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
        """See the module docstring: wait, fence, return the settled position."""
        start = self._start()
        head = self.head()
        if head <= start:
            return start
        margin = self.lease_us + self.skew_us
        if wait:
            delay = position_us(head) + margin - self._now()
            if delay > 0:
                time.sleep(delay / 1e6)
        target = min(head, position_at(self._now() - margin))
        if target <= start:
            return start
        holes = self._fence_since(start, target)
        self.holes = holes
        settled = max(start, min(h.from_position for h in holes) - 1) if holes else target
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
        return settled

    def _fence_since(self, start: int, target: int) -> list[FeedHole]:
        """Raise to ``target`` the fence of every partition announced in the slots of
        (start, target]; returns the partitions that could not be fenced."""
        first_slot: dict[tuple[str, int], int] = {}
        for slot in self._slots_from(slot_of(start + 1), slot_of(target)):
            for key in self.partitions(slot):
                first_slot.setdefault(key, slot)
        read = self._q("SELECT fence FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1")
        keys = list(first_slot)
        fences = execute_concurrent(
            self._session, [(read, k) for k in keys], concurrency=64, raise_on_first_error=False
        )
        todo, holes = [], []
        for key, (ok, result) in zip(keys, fences, strict=True):
            if not ok:
                holes.append(self._hole(key, first_slot[key], result))
                continue
            row = result.one()
            current = row[0] if row is not None else None
            if current is None or current < target:
                todo.append((key, current))
        raise_fence = self._q("UPDATE {ks}.events SET fence = ? WHERE stream_id = ? AND bucket = ? IF fence < ?")
        create_fence = self._q("UPDATE {ks}.events SET fence = ? WHERE stream_id = ? AND bucket = ? IF fence = null")
        for _ in range(8):
            if not todo:
                break
            calls = [
                (create_fence, (target, *key)) if current is None else (raise_fence, (target, *key, target))
                for key, current in todo
            ]
            results = execute_concurrent(self._session, calls, concurrency=32, raise_on_first_error=False)
            again = []
            for (key, _), (ok, result) in zip(todo, results, strict=True):
                if not ok:
                    holes.append(self._hole(key, first_slot[key], result))
                    continue
                if result.was_applied:
                    continue
                current = dict(zip(result.column_names, result.one(), strict=True)).get("fence")
                if current is None or current < target:
                    again.append((key, current))
            todo = again
        for key, _ in todo:
            holes.append(self._hole(key, first_slot[key], "the fence kept changing"))
        return holes

    @staticmethod
    def _hole(key: tuple[str, int], slot: int, error: object) -> FeedHole:
        if isinstance(error, BaseException):
            error = translate_driver_error(error) or error
        return FeedHole(key[0], key[1], slot << SLOT_SHIFT, str(error))

    def status(self) -> FeedStatus:
        start = self._start()
        head = self.head()
        unsettled: set[tuple[str, int]] = set()
        first_unsettled = None
        for slot in self._slots_from(slot_of(start) + 1):
            first_unsettled = slot if first_unsettled is None else first_unsettled
            unsettled.update(self.partitions(slot))
        settled = min(start, head) if head else start
        # nothing settled yet: the lag runs from the first second written
        since = settled if settled or first_unsettled is None else first_unsettled << SLOT_SHIFT
        lag = max(0.0, (position_us(head) - position_us(since)) / 1e6) if head > settled else 0.0
        return FeedStatus(
            settled=settled,
            head=head,
            lag_seconds=round(lag, 6),
            unsettled_partitions=len(unsettled),
            holes=list(self.holes),
        )
