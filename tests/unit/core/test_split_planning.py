"""Split planning as arithmetic: stream-id ranges (memory, SQLite) and token ranges (Cassandra)
cover every key exactly once, in about the number of splits asked for."""

from __future__ import annotations

import bisect
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from es_core.splits import in_range, stream_ranges

tokens = st.lists(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1), max_size=40, unique=True)


@given(
    sizes=st.dictionaries(st.text(min_size=1, max_size=6), st.integers(min_value=1, max_value=50), max_size=60),
    count=st.integers(min_value=1, max_value=20),
)
@settings(max_examples=200, deadline=None)
def test_stream_ranges_put_every_stream_in_exactly_one_range(sizes: dict[str, int], count: int) -> None:
    streams = sorted(sizes.items())
    ranges = stream_ranges(streams, count)
    assert 1 <= len(ranges) <= max(1, min(count, len(streams)))
    assert ranges[0][0] is None and ranges[-1][1] is None
    for stream_id, _ in streams:
        assert sum(in_range(stream_id, low, high) for low, high in ranges) == 1
    # ids the plan never saw (streams created later) land in exactly one range too
    for probe in ("", "\x00", "zzzz", "m", "\U0010ffff"):
        assert sum(in_range(probe, low, high) for low, high in ranges) == 1


def test_stream_ranges_balance_events_not_streams() -> None:
    streams = [("a", 100), ("b", 1), ("c", 1), ("d", 1), ("e", 97)]
    assert stream_ranges(streams, 2) == [(None, "a"), ("a", None)]
    assert len(stream_ranges(streams, 3)) == 3


def test_an_empty_store_is_one_range() -> None:
    assert stream_ranges([], 4) == [(None, None)]


cassandra_splits = pytest.importorskip("es_core.stores.cassandra_splits")


@given(ring=tokens, count=st.integers(min_value=1, max_value=64))
@settings(max_examples=200, deadline=None)
def test_token_plans_cover_the_ring_once(ring: list[int], count: int) -> None:
    plan = cassandra_splits.token_plan(ring, count)
    pieces = sorted(piece for group in plan for piece in group)
    assert pieces[0][0] == cassandra_splits.MIN_TOKEN and pieces[-1][1] == cassandra_splits.MAX_TOKEN
    for (_, high), (low, _) in pairwise(pieces):
        assert high == low  # adjacent: no gap, no overlap
    assert all(low < high for low, high in pieces)
    assert len(plan) == min(count, len(pieces))
    # no piece crosses a ring token, so each has one set of replicas
    ring = sorted(ring)
    for low, high in pieces:
        assert bisect.bisect_left(ring, high) == bisect.bisect_right(ring, low) or high in ring


def test_token_plans_are_seeded() -> None:
    ring = [-(2**62), 0, 2**62]
    assert cassandra_splits.token_plan(ring, 12) == cassandra_splits.token_plan(ring, 12)
    assert len(cassandra_splits.token_plan(ring, 12)) == 12
