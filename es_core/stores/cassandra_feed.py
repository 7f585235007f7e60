"""The global feed of the Cassandra store: positions, slots, shards, and why no clock is part of
its safety. The writer's side is ``cassandra_feed_writer``, the reader's ``cassandra_feed_reader``;
this module holds what they share: position arithmetic, the feed index, and the argument.

Positions
    ``position = (microseconds since 2020-01-01 UTC) << 12 | writer``, a 63-bit int. ``writer``
    is a number the handle holds in ``feed_writers`` (``cassandra_writers``), so positions are
    unique; a handle's positions only grow. The microseconds come from the handle's clock held
    near the cluster's (``cassandra_clock``). A stream's positions rise with its versions: the
    conditional write checks ``head_position < first new position``.

Slots and shards
    A *slot* is 2**20 µs of positions (about a second): ``slot = position >> 32``. A stream
    belongs to one of ``feed_shards`` shards (a CRC-32 of its id; the count is fixed per
    keyspace in ``store_settings``). The feed index is kept per (shard, slot), so announcements
    spread over the cluster instead of landing in one partition per second.

The protocol: a writer announces, then checks; a reader closes, then reads
    *Writer.* Before its first append into an event partition within a slot, a handle writes
    ``feed_announcements(shard, slot, stream_id, bucket, first_version)`` (and the slot's entry
    in ``feed_shard_slots``/``feed_shard_eras``) at a quorum, and **then** reads the shard's
    ``feed_closed`` marker at a quorum. If the marker has reached the slot, the handle takes
    positions above the closed slot and announces again; otherwise it sends its conditional
    write, which only applies if ``fence < first position`` in the event partition.

    *Reader.* To settle up to the end of slot X, a reader writes the marker ``X`` into every
    shard's ``feed_closed`` partition at a quorum, **then** reads, at a quorum, the index and the
    announcements of every slot after the last settled one up to X, and raises the ``fence`` of
    each announced partition to the end of the last of those slots it was announced in, with a
    conditional write (``IF fence < target``). Settled = the end of X, when every shard was
    closed and every announced partition fenced.

Why nothing is missed, whatever the clocks say
    Take a writer W whose announcement A of partition P in slot s (s <= X) completed, and a
    reader R whose marker M covering s completed. W read the marker after A completed; R read
    the announcements after M completed. If W did not see M, every replica W read from lacked M
    when W read it; one of them, n, is also in the quorum that acknowledged M (two quorums of
    one partition's replicas meet), so n received M after W's read, after A completed. R's
    read started after M completed, so after A completed, and R's quorum meets A's: R sees A.
    So either W sees the marker (and never writes into slot s) or R sees the announcement and
    fences P. After the fence's Paxos round no write with a first position <= target applies
    in P: a batch still in flight is refused (its writer takes new positions, above the fence,
    in a later slot, and lands once), and a batch that a quorum had accepted but not committed
    is committed by the fence's own round, before the reader reads P. Reading the announced
    partitions after fencing therefore returns every event up to the target, exactly once.
    Later appends of W into P in slot s (no new announcement) are covered by the same fence,
    and a write into P in a later closed slot would need its own announcement there, to which
    the same either-or applies: so fencing P up to the last slot it was announced in suffices.
    The markers only grow: a marker write is one mutation that inserts ``X`` and deletes the
    rows below it, so the highest row never goes backwards, and the fence only rises. Readers
    share work through the persisted settled position: one persisted only after its slots were
    closed and fenced, so the argument applies to it by induction.

    Each failure only costs liveness: an announcement that times out stops the append before
    its conditional write (the append raises a retryable error; a partial announcement costs a
    fence); a marker write that times out stops the settle at the last settled position (a
    partial marker makes some writers move on early); a fence that fails holds the settled
    position just before the first slot the partition was announced in, reported as a hole.

    Clocks decide only how long a reader waits for writers mid-slot (``feed_lease_ms`` at most),
    which slot an append lands in, and how often a writer is moved on. Writer numbers too are
    unique without clocks (``cassandra_writers``). What the feed assumes: quorum reads and
    writes (``consistency`` with the serial level's quorum) and one serial level for every
    conditional write, i.e. Cassandra's own guarantees for LWT and quorum.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType

from .cassandra_writers import WRITER_BITS

EPOCH_US = 1_577_836_800_000_000
"""2020-01-01T00:00:00Z in microseconds since the Unix epoch: positions fit 63 bits until 2091."""
SLOT_SHIFT = WRITER_BITS + 20
"""A slot is 2**20 microseconds (~1.05 s) of positions."""
ERA_SHIFT = 15
"""An era lists 2**15 slots (~9.5 hours) in ``feed_shard_slots``."""
DEFAULT_FEED_SHARDS = 16
MAX_FEED_SHARDS = 1024
POSITION_AT = 7  # index of ``position`` in the event rows the store reads (cassandra_schema.EVENT_COLUMNS)


def position_us(position: int) -> int:
    """The microsecond (since the Unix epoch) a position was allocated at."""
    return (position >> WRITER_BITS) + EPOCH_US


def position_at(micros: int) -> int:
    """The highest position any writer could allocate at ``micros``."""
    return ((micros - EPOCH_US) << WRITER_BITS) | ((1 << WRITER_BITS) - 1)


def slot_of(position: int) -> int:
    return position >> SLOT_SHIFT


def slot_end(slot: int) -> int:
    return ((slot + 1) << SLOT_SHIFT) - 1


def shard_of(stream_id: str, shards: int) -> int:
    """A stream's feed shard: stable across processes and versions (unlike ``hash``)."""
    return zlib.crc32(stream_id.encode()) % shards


@dataclass(frozen=True)
class FeedHole:
    """What the last settle could not do, holding the settled position before ``from_position``
    until a later settle succeeds: fence a partition (``stream_id``, ``bucket``), or close a
    whole shard (``stream_id`` None)."""

    stream_id: str | None
    bucket: int | None
    shard: int
    from_position: int
    error: str


@dataclass(frozen=True)
class FeedStatus:
    """The feed as this handle sees it; lag, holes and clocks are reported apart.

    ``settled``: no event at or before it can still appear. ``head``: the newest event's
    position. ``lag_seconds``: how far the settled position trails the head in time (0 when
    they meet). ``unsettled_partitions``: partitions announced in the slots after the settled
    one: appends under way or not yet settled. ``holes``: what the last settle could not fence
    or close. ``clock_offset_seconds``: this handle's clock minus the cluster's;
    ``clock_out_of_bounds``: that offset is beyond ``clock_skew_ms``, so this handle's positions
    follow the cluster's clock (bounded by the allowance) instead. ``head_ahead_seconds``: how
    far the head lies ahead of the cluster's clock (about ``clock_skew_ms`` at most from writers
    held to the bounds; more means a writer outside them, whose events settle only once the
    cluster's clock reaches them, since readers close no slot beyond it: a stall of those
    events, reported here, never of the others')."""

    settled: int
    head: int
    lag_seconds: float
    unsettled_partitions: int
    holes: list[FeedHole] = field(default_factory=list)
    clock_offset_seconds: float = 0.0
    clock_out_of_bounds: bool = False
    head_ahead_seconds: float = 0.0


class FeedIndex:
    """The feed's tables: announcements, the per-shard slot index, and the closed markers."""

    def __init__(self, session: Any, prepare: Callable[[str], Any], shards: int) -> None:
        self.session = session
        self._q = prepare
        self.shards = shards

    # -- writing -------------------------------------------------------------------------------

    def announcement(self, shard: int, slot: int, stream_id: str, bucket: int, first_version: int) -> tuple[Any, Any]:
        statement = self._q(
            "INSERT INTO {ks}.feed_announcements (shard, slot, stream_id, bucket, first_version) VALUES (?, ?, ?, ?, ?)"
        )
        return statement, (shard, slot, stream_id, bucket, first_version)

    def slot_entry(self, shard: int, slot: int) -> tuple[Any, Any]:
        statement = self._q("INSERT INTO {ks}.feed_shard_slots (shard, era, slot) VALUES (?, ?, ?)")
        return statement, (shard, slot >> ERA_SHIFT, slot)

    def era_entry(self, shard: int, era: int) -> tuple[Any, Any]:
        return self._q("INSERT INTO {ks}.feed_shard_eras (shard, era) VALUES (?, ?)"), (shard, era)

    def closing(self, shard: int, upto: int) -> BatchStatement:
        """The marker "slots up to ``upto`` are closed" for one shard: one mutation that inserts
        it and deletes the lower ones, so the highest marker never goes backwards."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(self._q("INSERT INTO {ks}.feed_closed (shard, upto) VALUES (?, ?)"), (shard, upto))
        batch.add(self._q("DELETE FROM {ks}.feed_closed WHERE shard = ? AND upto < ?"), (shard, upto))
        return batch

    # -- reading -------------------------------------------------------------------------------

    def closed_upto(self, shard: int) -> int:
        """The highest closed slot of the shard (-1 if none)."""
        row = self.session.execute(self._q("SELECT upto FROM {ks}.feed_closed WHERE shard = ? LIMIT 1"), (shard,)).one()
        return int(row[0]) if row is not None else -1

    def slots(
        self, first: int, last: int | None = None, *, descending: bool = False
    ) -> Iterator[tuple[int, list[int]]]:
        """Slots from ``first`` (to ``last``) with announcements, in order, each with the shards
        that have them. Each shard's index is paged lazily, so stopping early reads little."""
        top = (1 << 62) if last is None else last
        order = "DESC" if descending else "ASC"
        eras = self._merged(
            f"SELECT era FROM {{ks}}.feed_shard_eras WHERE shard = ? AND era >= ? AND era <= ? ORDER BY era {order}",
            [(shard, first >> ERA_SHIFT, top >> ERA_SHIFT) for shard in range(self.shards)],
            descending,
        )
        statement = (
            "SELECT slot FROM {ks}.feed_shard_slots WHERE shard = ? AND era = ? AND slot >= ? AND slot <= ?"
            f" ORDER BY slot {order}"
        )
        for era, shards in eras:
            yield from self._merged(statement, [(shard, era, first, top) for shard in shards], descending)

    def _merged(self, cql: str, params: list[tuple[Any, ...]], descending: bool) -> Iterator[tuple[int, list[int]]]:
        """Run one ordered single-column query per shard; merge the answers, grouping equal values."""
        prepared = self._q(cql)
        calls = []
        for values in params:
            statement = prepared.bind(values)
            statement.fetch_size = 64
            calls.append((statement, ()))
        results = execute_concurrent(self.session, calls, concurrency=64, raise_on_first_error=True)
        streams = [_tagged(result, values[0]) for values, (_, result) in zip(params, results, strict=True)]
        merged = heapq.merge(*streams, reverse=descending)
        for value, group in groupby(merged, key=lambda item: item[0]):
            yield value, [shard for _, shard in group]

    def announced(self, slot: int, shards: list[int]) -> dict[tuple[str, int], int]:
        """Partitions announced under ``slot`` in ``shards``, each with its lowest announced version."""
        statement = self._q(
            "SELECT stream_id, bucket, first_version FROM {ks}.feed_announcements WHERE shard = ? AND slot = ?"
        )
        results = execute_concurrent(
            self.session, [(statement, (shard, slot)) for shard in shards], concurrency=64, raise_on_first_error=True
        )
        found: dict[tuple[str, int], int] = {}
        for _, rows in results:
            for stream_id, bucket, first in rows:
                key = (stream_id, bucket)
                found[key] = min(first, found.get(key, first))
        return found


def _tagged(rows: Any, shard: int) -> Iterator[tuple[int, int]]:
    """A shard's single-column rows as (value, shard), paged lazily."""
    for row in rows:
        yield row[0], shard
