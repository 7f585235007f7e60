"""The append protocol of the Cassandra store: one single-partition conditional write per attempt.

The concurrency check of an append expecting version ``x`` (the stream is at ``x`` exactly when
the partition ``x // width`` has head ``x``, or, while that partition is still empty, when ``x``
is the head of an earlier partition, which is then closed for good):

* usually one conditional ``UPDATE`` of the first new row, ``IF head = x AND head_id != <first
  id> AND head_position < <first position> AND fence < <first position> AND event_id = null``
  (the last is the row's ``IF NOT EXISTS``), which also sets the head; further rows of the
  append join it as ``INSERT ... IF NOT EXISTS`` in a single-partition conditional batch;
* the first append into a partition reads the partition holding version ``x`` and checks its
  head is ``x``, then writes ``IF head = null AND fence = <fence> AND event_id = null``. Racing
  writers of the same first version meet on the same row.

A write attempt returns what happened as a value the caller switches on: ``Landed``,
``Duplicate`` (a retry of an append that landed), ``Reposition`` (a fence or the stream's last
position is at or above ours: take new positions), ``FirstAppend`` (the target partition is
empty: write it as the partition's first append, against its current fence) or ``Moved`` (the
stream is not at the expected version). For an exact expected version ``Moved`` becomes a
``ConcurrencyError``, unless the batch's ids are stored already (a retry).

``Expect.ANY`` and ``STREAM_EXISTS`` loop over three steps, each at a quorum, the lookup redone
every time: (1) read the stream's version ``v``; (2) look up every event id of the batch in the
stream through the event id index; (3) the conditional write at ``v``. Why a retry can never
store its ids twice:

* an original append of the same ids that committed before (1) is at a version ``<= v``, so
  its rows are visible to (2), which then answers with the original's result;
* an original that had not committed by (1) was placed at the version its own process read
  before, ``w <= v`` (quorum reads of a stream's version never go backwards). If ``w < v``,
  version ``w + 1`` is held by another append written into the same partition (version
  ``w + 1`` is always written by an append expecting ``w``), whose later Paxos round
  finished first: the original's condition can never hold again, so it never commits. If
  ``w = v``, the original and (3) are conditional writes of the same partition and row: Paxos
  orders them, and whichever comes second is refused. If the original comes first (also when
  (3)'s own Paxos round completes it), (3) is refused and the next loop finds the ids in (2).

What stays best effort is documented where the event id guarantee is (``docs/cassandra.md``):
ids are not checked across streams, nor, for an exact-version append that wins its write,
against ids stored before the stream's latest append.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from ..errors import ConcurrencyError, InvalidEventError, StoreCorruptionError, StoreUnavailableError
from ..events import AppendResult, Expect, ExpectedVersion, PreparedEvent
from .base import check_expected, match_retry, micros, moment
from .cassandra_chain import Chain
from .cassandra_feed_writer import FeedWriter
from .cassandra_statements import FIRST_ROW_FIRST, FIRST_ROW_NEXT, INSERT_EVENT, MAX_LIMIT, SELECT_BY_ID, SELECT_ROWS

ATTEMPTS = 16
"""Conditional writes per append: new positions (a reader's fence, a clock behind the stream's
last writer) or a partition's fence moving under its first append are all rare."""
ANY_ROUNDS = 100
_FENCES_KEPT = 100_000

MAX_BATCH_BYTES = 4 * 1024 * 1024
"""Encoded payloads of one append: a conditional batch is one mutation, and Cassandra refuses a
mutation over half a commit-log segment (8 MiB with 16 MiB segments)."""


@dataclass(frozen=True)
class Landed:
    result: AppendResult


@dataclass(frozen=True)
class Duplicate:
    """The batch is a retry of an append that landed: ``result`` is the original's."""

    result: AppendResult


@dataclass(frozen=True)
class Reposition:
    """Take positions above ``past`` and try again."""

    past: int


@dataclass(frozen=True)
class FirstAppend:
    """The partition is empty: write it as its first append, against this fence."""

    fence: int | None


@dataclass(frozen=True)
class Moved:
    """The stream is not at the expected version (and this batch is not its latest append)."""


Attempt = Landed | Duplicate | Reposition | FirstAppend | Moved


@dataclass(frozen=True)
class _Job:
    """One append: its events as versions ``at + 1``... into partition ``bucket``."""

    stream_id: str
    events: list[PreparedEvent]
    at: int
    recorded_at: datetime
    bucket: int


class _Found(NamedTuple):
    version: int
    position: int
    recorded_at: int


class Appender:
    """Appends of one store handle (thread-safe)."""

    def __init__(self, live: Callable[[], Any], prepare: Callable[[str], Any], chain: Chain, feed: FeedWriter) -> None:
        self._live = live
        self._q = prepare
        self._chain = chain
        self._feed = feed
        self._fences: dict[tuple[str, int], int | None] = {}  # an empty partition's fence, as last seen

    def append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        if not events:
            current = self._chain.tail(stream_id)
            conflict = check_expected(stream_id, expected, current)
            if conflict:
                raise conflict
            return AppendResult(stream_id=stream_id, first_version=current + 1, last_version=current)
        size = sum(len(e.data) + len(e.metadata) for e in events)
        if size > MAX_BATCH_BYTES:
            raise InvalidEventError(
                f"the append's payloads total {size} bytes, over the {MAX_BATCH_BYTES} bytes one "
                "Cassandra batch takes; append in smaller batches"
            )
        if expected is Expect.ANY or expected is Expect.STREAM_EXISTS:
            return self._append_any(stream_id, events, expected, recorded_at)
        outcome = self.append_at(stream_id, events, 0 if expected is Expect.NO_STREAM else int(expected), recorded_at)
        if isinstance(outcome, Moved):
            return self._conflict(stream_id, events, expected)
        return outcome.result

    def _append_any(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        """Version, then ids, then the write at that version: see the module docstring."""
        for _ in range(ANY_ROUNDS):
            current = self._chain.tail(stream_id)
            found = self.find_ids(stream_id, events)
            if found:
                return self._duplicate(stream_id, events, found)
            conflict = check_expected(stream_id, expected, current)  # only STREAM_EXISTS can refuse here
            if conflict:
                raise conflict
            outcome = self.append_at(stream_id, events, current, recorded_at)
            if not isinstance(outcome, Moved):
                return outcome.result
        raise StoreUnavailableError(f"stream {stream_id!r} kept moving; no append landed after {ANY_ROUNDS} tries")

    def append_at(
        self, stream_id: str, events: list[PreparedEvent], at: int, recorded_at: datetime
    ) -> Landed | Duplicate | Moved:
        """Write ``events`` as versions ``at + 1``...: as many attempts as new positions or a
        moving fence need."""
        job = _Job(stream_id, events, at, recorded_at, at // self._chain.width)
        first_path = at % self._chain.width == 0  # version `at` ends the previous bucket: the target is likely empty
        positions: list[int] | None = None
        checked = False  # the partition holding `at` is closed: checking it once per positions suffices
        for _ in range(ATTEMPTS):
            if positions is None:
                positions, checked = self._feed.place(stream_id, job.bucket, len(events), at + 1), False
            outcome: Attempt | None = None
            if first_path and at > 0 and not checked:
                outcome, checked = self._check_previous(job, positions), True
            if outcome is None:
                outcome = self._write(job, positions, first_path)
            if isinstance(outcome, Reposition):
                self._feed.bump(outcome.past)
                positions = None
            elif isinstance(outcome, FirstAppend):
                self._remember_fence((stream_id, job.bucket), outcome.fence)
                first_path = True
            else:
                return outcome
        raise StoreUnavailableError(
            f"no append to {stream_id!r} placed in {ATTEMPTS} attempts (fencing, or a partition's fence kept changing)"
        )

    def _write(self, job: _Job, positions: list[int], first_path: bool) -> Attempt:
        """One conditional write of the whole append, and what its answer means."""
        stream_id, events, at, bucket = job.stream_id, job.events, job.at, job.bucket
        n, first_id, p0 = len(events), events[0].event_id, positions[0]
        fence = self._fences.get((stream_id, bucket))  # only a partition's first append needs the exact value
        if first_path and fence is not None and fence >= p0:
            return Reposition(fence)
        result = self._live().execute(self._statement(job, positions, first_path, fence))
        if result.was_applied:
            self._chain.remember_tail(stream_id, bucket)
            return Landed(
                AppendResult(
                    stream_id=stream_id, first_version=at + 1, last_version=at + n,
                    last_position=positions[-1], recorded_at=job.recorded_at,
                )
            )  # fmt: skip
        rows = [dict(zip(result.column_names, row, strict=True)) for row in result.current_rows]
        state = rows[0]
        head, current_fence = state.get("head"), state.get("fence")
        if first_path:
            if head is None and current_fence != fence:  # a reader fenced the empty partition
                return FirstAppend(current_fence)
            if head is None:
                raise StoreCorruptionError(f"{stream_id!r}: rows exist in partition {bucket} without a head")
        elif head is None:  # the partition is empty: version `at` sits in an earlier one
            return FirstAppend(current_fence)
        elif head == at:
            if state.get("head_id") == first_id:  # a retry of the stream's latest append
                return Duplicate(self._duplicate(stream_id, events, self._read_ids(stream_id, bucket, at - n, at)))
            if current_fence is not None and current_fence >= p0:
                return Reposition(current_fence)  # a reader settled past these positions
            if (state.get("head_position") or 0) >= p0:
                return Reposition(state["head_position"])  # this clock is behind the stream's last writer's
            raise StoreCorruptionError(f"{stream_id!r}: a conditional batch was refused for no reason")
        if any(r.get("event_id") == first_id for r in rows):  # the batch's first id at the wanted version
            return Duplicate(self._duplicate(stream_id, events, self._read_ids(stream_id, bucket, at, at + n)))
        return Moved()

    def _statement(self, job: _Job, positions: list[int], first_path: bool, fence: int | None) -> Any:
        stream_id, events, at, bucket = job.stream_id, job.events, job.at, job.bucket
        n, first_id, p0 = len(events), events[0].event_id, positions[0]
        stamp = micros(job.recorded_at)
        e = events[0]
        row = (e.event_id, e.event_type, e.schema_version, e.data, e.metadata, stamp, p0, stream_id, bucket, at + 1)
        if first_path:
            statement: Any = self._q(FIRST_ROW_FIRST).bind((at + n, first_id, positions[-1], fence or 0, *row, fence))
        else:
            statement = self._q(FIRST_ROW_NEXT).bind((at + n, first_id, positions[-1], *row, at, first_id, p0, p0))
        if n == 1:
            return statement
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)  # the other rows join it: one partition, one Paxos round
        batch.add(statement)
        insert = self._q(INSERT_EVENT)
        for i, e in enumerate(events[1:], start=1):
            batch.add(insert, (
                stream_id, bucket, at + 1 + i, e.event_id, e.event_type, e.schema_version, e.data,
                e.metadata, stamp, positions[i],
            ))  # fmt: skip
        return batch

    def _check_previous(self, job: _Job, positions: list[int]) -> Attempt | None:
        """Before the first append into a partition: version ``at`` must be the head of the
        partition that holds it (a closed partition, so the answer cannot change)."""
        located = self._chain.locate(job.stream_id, job.at)
        if located is None or located[1].head != job.at:
            return Moved()
        holder, statics = located
        if statics.head_id == job.events[0].event_id:
            found = self._read_ids(job.stream_id, holder, job.at - len(job.events), job.at)
            return Duplicate(self._duplicate(job.stream_id, job.events, found))
        if (statics.head_position or 0) >= positions[0]:
            return Reposition(statics.head_position or 0)
        return None

    def _remember_fence(self, key: tuple[str, int], fence: int | None) -> None:
        if len(self._fences) > _FENCES_KEPT:
            self._fences.clear()
        self._fences[key] = fence

    # -- retries ---------------------------------------------------------------------------------

    def _conflict(self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion) -> AppendResult:
        """An exact-version append found the stream elsewhere: a retry found elsewhere in the
        stream (or a partial reuse of its ids), else ``ConcurrencyError`` with the stream's version."""
        if self.find_ids(stream_id, events[:1]):
            return self._duplicate(stream_id, events, self.find_ids(stream_id, events))
        raise ConcurrencyError(stream_id, expected, self._chain.tail(stream_id))

    def _read_ids(self, stream_id: str, bucket: int, after: int, upto: int) -> dict[Any, _Found]:
        rows = self._live().execute(self._q(SELECT_ROWS), (stream_id, bucket, after, upto, MAX_LIMIT))
        return {r[1]: _Found(r[0], r[7], r[6]) for r in rows if r[0] is not None}

    def find_ids(self, stream_id: str, events: list[PreparedEvent]) -> dict[Any, _Found]:
        """Where the events' ids are stored in the stream (through the event id index)."""
        buckets = [b for b, _ in self._chain.chain(stream_id)]
        if not buckets:
            return {}
        statement = self._q(SELECT_BY_ID)
        calls = [(statement, (stream_id, b, e.event_id)) for e in events for b in buckets]
        found: dict[Any, _Found] = {}
        results = execute_concurrent(self._live(), calls, concurrency=32, raise_on_first_error=True)
        for (_, (_, _, event_id)), (_, rows) in zip(calls, results, strict=True):
            for version, position, stamp in rows:
                found[event_id] = _Found(version, position, stamp)
        return found

    def _duplicate(self, stream_id: str, events: list[PreparedEvent], found: dict[Any, _Found]) -> AppendResult:
        stored = [(e.event_id, stream_id, found[e.event_id].version) for e in events if e.event_id in found]
        if not stored:
            raise StoreCorruptionError(f"{stream_id!r}: a retry's events vanished while being read")
        result = match_retry(stream_id, events, stored)
        last = found[events[-1].event_id]
        return msgspec.structs.replace(result, last_position=last.position, recorded_at=moment(last.recorded_at))
