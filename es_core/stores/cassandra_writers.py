"""Writer numbers of the global feed: claiming, renewing and releasing one.

A position is ``(microseconds) << 12 | writer``: each store handle that appends holds one of the
4,096 writer numbers in ``feed_writers`` while it appends. Uniqueness of positions must not rest
on clocks, so a number's row carries ``reserved``, the highest position time (µs) its holder may
hand out:

* **claim**: read the row; the number is free when it has no row, no owner (released), or its
  reservation has run out by the cluster's clock. A conditional write takes it *if the owner and
  reservation are still the ones read*, and reserves ``HOLD_US`` of cluster time ahead. The new
  holder hands out only positions above the old reservation, so it can never repeat a position
  of an earlier holder, even one paused for longer than its reservation (that one never goes past
  it). Whether a number counts as run out is the only thing a clock decides: liveness, not safety.
* **renew**: before handing out a position above its reservation, or once less than
  ``RENEW_BEFORE_US`` of it remains, the holder extends it with a conditional write
  ``IF owner = me``; if another handle took the number over, it claims another.
* **release** (``close()``): ``owner = null`` and ``reserved`` = the last position time used, so
  the next holder starts right above it. Best effort: a release that fails (node down) leaves a
  claim that frees itself when its reservation runs out (at most ``HOLD_US``, ten minutes).

Claims never exhaust while handles close: a claim probes a few random numbers, then reads the
whole table (4,096 small rows at most) and tries every free one; only when every number is held
by a live reservation does it fail, with ``StoreUnavailableError``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import StoreUnavailableError
from .cassandra_clock import ClusterClock

WRITER_BITS = 12
WRITERS = 1 << WRITER_BITS
HOLD_US = 600 * 1_000_000
"""How far ahead (cluster time) a claim or renewal reserves positions: a crashed holder's number
frees itself this long after its last renewal at most."""
RENEW_BEFORE_US = HOLD_US // 2
PROBES = 8  # random numbers tried before reading the whole table


@dataclass
class Claim:
    writer: int
    floor_us: int  # positions of this claim lie above it (the previous holder's reservation)
    reserved_us: int


class WriterNumbers:
    """This handle's side of ``feed_writers`` (its owner id is fresh per handle)."""

    def __init__(self, session: Any, prepare: Callable[[str], Any], clock: ClusterClock) -> None:
        self._session = session
        self._q = prepare
        self._clock = clock
        self.owner = uuid.uuid4()
        self._rng = random.Random()

    def claim(self) -> Claim:
        for candidate in self._rng.sample(range(WRITERS), PROBES):
            claim = self._try(candidate, self._row(candidate))
            if claim is not None:
                return claim
        rows = {
            r[0]: (r[1], r[2])
            for r in self._session.execute(self._q("SELECT writer, owner, reserved FROM {ks}.feed_writers"))
        }
        now = self._clock.now_us()
        free = [w for w in range(WRITERS) if w not in rows or _free(*rows[w], now)]
        self._rng.shuffle(free)
        for candidate in free:
            claim = self._try(candidate, rows.get(candidate, (None, None)))
            if claim is not None:
                return claim
        raise StoreUnavailableError(
            f"all {WRITERS} feed writer numbers are held: {WRITERS} store handles are appending at once, or "
            "handles were not closed (a crashed process's number frees itself within "
            f"{HOLD_US // 60_000_000} minutes)"
        )

    def renew(self, claim: Claim, needed_us: int) -> bool:
        """Extend the reservation to cover ``needed_us`` (and ``HOLD_US`` ahead); False if lost."""
        reserved = max(claim.reserved_us, needed_us, self._clock.now_us() + HOLD_US)
        result = self._session.execute(
            self._q("UPDATE {ks}.feed_writers SET reserved = ? WHERE writer = ? IF owner = ?"),
            (reserved, claim.writer, self.owner),
        )
        if result.was_applied:
            claim.reserved_us = reserved
        return bool(result.was_applied)

    def release(self, claim: Claim, used_us: int) -> None:
        """Give the number back; the next holder starts above ``used_us``, the last position time used."""
        self._session.execute(
            self._q("UPDATE {ks}.feed_writers SET owner = null, reserved = ? WHERE writer = ? IF owner = ?"),
            (max(used_us, claim.floor_us), claim.writer, self.owner),
        )

    def _row(self, writer: int) -> tuple[Any, int | None]:
        row = self._session.execute(
            self._q("SELECT owner, reserved FROM {ks}.feed_writers WHERE writer = ?"), (writer,)
        ).one()
        return (row[0], row[1]) if row is not None else (None, None)

    def _try(self, writer: int, row: tuple[Any, int | None]) -> Claim | None:
        owner, reserved = row
        now = self._clock.now_us()
        if not _free(owner, reserved, now):
            return None
        floor = reserved or 0
        until = max(floor, now) + HOLD_US
        taken = self._session.execute(
            self._q(
                "UPDATE {ks}.feed_writers SET owner = ?, reserved = ? WHERE writer = ? IF owner = ? AND reserved = ?"
            ),
            (self.owner, until, writer, owner, reserved),
        )
        return Claim(writer, floor, until) if taken.was_applied else None


def _free(owner: Any, reserved: int | None, now_us: int) -> bool:
    """Nobody holds the number: no owner, or a reservation the cluster's clock has passed. A row
    with an owner but no reservation is a claim of the first feed layout (it expires by its TTL)."""
    return owner is None or (reserved is not None and reserved < now_us)
