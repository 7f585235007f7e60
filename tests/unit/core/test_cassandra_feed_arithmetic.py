"""The Cassandra feed's arithmetic, without a node: positions and slots, stable shards, and a
handle's clock held within the skew allowance of the cluster's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core.stores.cassandra_clock import BoundedClock
from es_core.stores.cassandra_feed import EPOCH_US, position_at, position_us, shard_of, slot_end, slot_of
from es_core.stores.cassandra_writers import _free


class FixedCluster:
    """A cluster clock that answers one time (what a coordinator would say)."""

    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def now_us(self) -> int:
        return self.now


def test_positions_and_slots_round_trip() -> None:
    micros = EPOCH_US + 123_456_789_012
    top = position_at(micros)
    assert position_us(top) == micros and top & 0xFFF == 0xFFF
    assert slot_of(top) == (micros - EPOCH_US) >> 20
    assert slot_of(slot_end(slot_of(top))) == slot_of(top) and slot_of(slot_end(slot_of(top)) + 1) == slot_of(top) + 1


def test_shards_are_stable_across_processes_and_spread() -> None:
    # crc32 values, not Python's per-process salted hash: a stream's shard never moves
    assert [shard_of(s, 16) for s in ("member-m00042", "member-m00043", "a")] == [6, 0, 3]
    assert len({shard_of(f"member-m{i:05d}", 16) for i in range(200)}) == 16
    assert {shard_of("anything", 1)} == {0}


@pytest.mark.parametrize(
    ("offset_s", "expected_offset_s"), [(0.0, 0.0), (0.05, 0.05), (60.0, 0.1), (-10.0, -0.1), (-1.0, -0.1)]
)
def test_a_handles_clock_is_held_within_the_skew_allowance(offset_s: float, expected_offset_s: float) -> None:
    cluster_us = 1_796_600_000_000_000
    own = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=cluster_us) + timedelta(seconds=offset_s)
    clock = BoundedClock(lambda: own, FixedCluster(cluster_us), 100_000)  # type: ignore[arg-type]
    assert clock.now_us() == cluster_us + round(expected_offset_s * 1e6)
    assert clock.offset_us == round(offset_s * 1e6)
    assert clock.out_of_bounds == (abs(offset_s) > 0.1)


def test_a_writer_number_is_free_when_released_or_run_out() -> None:
    assert _free(None, None, 10) and _free(None, 50, 10)  # never claimed; released
    assert _free("owner", 9, 10) and not _free("owner", 11, 10)  # reservation run out; still held
    assert not _free("owner", None, 10)  # a first-layout claim: held until its TTL removes it
