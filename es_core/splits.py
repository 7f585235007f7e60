"""Partitioned reads: a store's streams cut into shares that separate processes read in parallel.

``EventStore.split(count)`` plans about ``count`` splits; ``EventStore.read_split(split)`` reads
one of them. Together the splits of one plan hold every stream of the store exactly once and
whole: each stream's events in version order, one stream after another, never a stream cut
between two splits. That is what a per-stream computation (a replay, a per-member projection)
needs to run on each split alone and merge the answers.

A plan is a cut of the log: it records the position up to which the store had settled when it
was made (``upto``), and every split leaves out events after it, so splits read while writers
carry on still add up to one consistent history.

A ``StoreSplit`` is a small, picklable description (it travels to worker processes): the URL
that opens the store, never a handle, and key ranges. On memory and SQLite the keys are stream
ids; on Cassandra they are tokens of the events table's partition key ``(stream_id, bucket)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise
from typing import Any

import msgspec

from .errors import InvalidSplitError

MAX_SPLITS = 100_000
"""The most splits one plan may ask for (each is a task somewhere)."""


class StoreSplit(msgspec.Struct, frozen=True, kw_only=True):
    """One share of a store's streams. ``ranges`` are ``(low, high]`` key ranges: stream ids on
    memory and SQLite (``None`` for an open end), token ranges on Cassandra."""

    url: str  # opens the store from another process (an absolute path for SQLite)
    origin: str  # names the store the plan was made on: ``read_split`` refuses another store's
    index: int
    count: int
    upto: int  # the settled position when planned: later events are left out
    ranges: tuple[tuple[Any, Any], ...]


def check_split_count(count: object) -> int:
    if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= MAX_SPLITS:
        return count
    raise InvalidSplitError(f"a split count must be an int from 1 to {MAX_SPLITS:,}, not {count!r}")


def check_split(split: object, origin: str) -> StoreSplit:
    """``split`` if it is a split planned on the store named ``origin``."""
    if not isinstance(split, StoreSplit):
        raise InvalidSplitError(f"expected a StoreSplit from EventStore.split(), not {type(split).__name__}")
    if split.origin != origin:
        raise InvalidSplitError(f"this split was planned on {split.origin}, not on this store ({origin})")
    return split


def stream_ranges(sizes: Iterable[tuple[str, int]], count: int) -> list[tuple[str | None, str | None]]:
    """Cut streams (``(stream_id, events)`` in stream-id order) into at most ``count`` ranges
    ``(low, high]`` of about equal numbers of events. The first range starts and the last ends
    open, so together they cover every stream id, including streams created later."""
    streams = list(sizes)
    left = sum(n for _, n in streams)  # events not yet in a closed range
    cuts: list[str] = []
    held = 0  # events in the range being filled
    for i, (_, events) in enumerate(streams):
        target = left / (count - len(cuts))
        # close the range before this stream when that lands nearer its share than taking it
        if held and len(cuts) < count - 1 and abs(held + events - target) > abs(held - target):
            cuts.append(streams[i - 1][0])
            left -= held
            held = 0
        held += events
    bounds: list[str | None] = [None, *cuts, None]
    return list(pairwise(bounds))


def in_range(stream_id: str, low: str | None, high: str | None) -> bool:
    return (low is None or stream_id > low) and (high is None or stream_id <= high)


def plan(url: str, origin: str, upto: int, ranges: list[tuple[Any, ...]]) -> list[StoreSplit]:
    """One split per entry of ``ranges`` (each a tuple of key ranges)."""
    return [
        StoreSplit(url=url, origin=origin, index=i, count=len(ranges), upto=upto, ranges=tuple(r))
        for i, r in enumerate(ranges)
    ]
