"""Partitioned reads on Cassandra: splits by token ranges of the events table's partition key
``(stream_id, bucket)``.

Planning cuts the ring's ranges (between consecutive tokens of the nodes' vnodes) into about
``count`` pieces, none crossing a ring token, so each piece has one set of replicas; pieces are
dealt into splits in token order and the splits shuffled (seeded), so tasks taken in order
spread over the nodes. Reading scans each piece with paged queries sent to a replica that owns
it (the handle's own session: a process opens one handle and reads many splits with it).

A stream whose events span several partitions is read whole, once, by the split whose range
holds its bucket 0: every stream has that partition (truncation deletes rows, never a
partition's static head), and its head names the bucket of the next append, so the reader
follows the chain from there (``cassandra_read.stream_rows``). Other splits skip later buckets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

from cassandra.metadata import Murmur3Token

from ..events import StoredEvent
from ..splits import StoreSplit, plan
from .cassandra_chain import Chain
from .cassandra_errors import TRANSLATED
from .cassandra_read import stored, stream_rows
from .cassandra_schema import EVENT_COLUMNS

MIN_TOKEN = -(2**63)  # Murmur3 never hands out the minimum: (MIN_TOKEN, t] holds every token <= t
MAX_TOKEN = 2**63 - 1

SCAN = (
    "SELECT stream_id, bucket, " + EVENT_COLUMNS + " FROM {ks}.events"
    " WHERE token(stream_id, bucket) > ? AND token(stream_id, bucket) <= ?"
)
_VERSION, _POSITION, _HEAD = 2, 9, 10  # in a SCAN row; the event's columns start at 2


def ring_ranges(tokens: list[int]) -> list[tuple[int, int]]:
    """``(low, high]`` ranges between the ring's tokens that cover every token once."""
    ring = sorted(set(tokens))
    if not ring:
        return [(MIN_TOKEN, MAX_TOKEN)]
    ranges = [(MIN_TOKEN, ring[0]), *pairwise(ring)]
    if ring[-1] < MAX_TOKEN:
        ranges.append((ring[-1], MAX_TOKEN))
    return [r for r in ranges if r[0] < r[1]]


def cut(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``(low, high]`` as ``parts`` adjacent ranges of about equal width (fewer if it is narrow)."""
    parts = max(1, min(parts, high - low))
    bounds = [low + (high - low) * i // parts for i in range(parts)] + [high]
    return list(pairwise(bounds))


def token_plan(tokens: list[int], count: int) -> list[list[tuple[int, int]]]:
    """About ``count`` groups of token ranges covering the ring once, in a shuffled order."""
    ranges = ring_ranges(tokens)
    per_range = -(-count // len(ranges))  # ceil
    pieces = [piece for low, high in ranges for piece in cut(low, high, per_range)]
    groups = max(1, min(count, len(pieces)))
    dealt = [pieces[len(pieces) * g // groups : len(pieces) * (g + 1) // groups] for g in range(groups)]
    random.Random(count).shuffle(dealt)  # seeded: the same ring and count give the same plan
    return dealt


class Splits:
    """Plans and reads splits through one session."""

    def __init__(
        self,
        live: Callable[[], Any],
        prepare: Callable[[str], Any],
        chain: Chain,
        cluster: Any,
        keyspace: str,
    ) -> None:
        self._live = live
        self._q = prepare
        self._chain = chain
        self._cluster = cluster
        self._keyspace = keyspace

    def origin(self) -> str:
        return f"cassandra://{self._cluster.metadata.cluster_name}/{self._keyspace}"

    def plan(self, url: str, count: int, upto: int) -> list[StoreSplit]:
        token_map = self._cluster.metadata.token_map
        tokens = [t.value for t in token_map.ring] if token_map is not None else []
        return plan(url, self.origin(), upto, [tuple(group) for group in token_plan(tokens, count)])

    def read(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        page: list[StoredEvent] = []
        for low, high in split.ranges:
            for event in self._read_range(low, high, split, page_size):
                page.append(event)
                if len(page) >= page_size:
                    yield page
                    page = []
        if page:
            yield page

    def _read_range(self, low: int, high: int, split: StoreSplit, page_size: int) -> Iterator[StoredEvent]:
        with TRANSLATED:
            statement = self._q(SCAN).bind((low, high))
            statement.fetch_size = page_size
            rows = iter(self._live().execute(statement, host=self._replica(high, split.index)))
        key: tuple[str, int] | None = None
        last: tuple[Any, ...] | None = None
        while True:
            with TRANSLATED:
                row = next(rows, None)
            if row is None or (row[0], row[1]) != key:
                if last is not None and key is not None and key[1] == 0:
                    yield from self._rest_of_stream(key[0], last[_HEAD], split.upto)
                if row is None:
                    return
                key = (row[0], row[1])
            last = row
            # later buckets are read with their stream's bucket 0; a row without a version is a
            # partition whose rows were truncated (its statics remain)
            if row[1] == 0 and row[_VERSION] is not None and row[_POSITION] <= split.upto:
                yield stored(row[0], row[2:])

    def _rest_of_stream(self, stream_id: str, head: int | None, upto: int) -> Iterator[StoredEvent]:
        """The stream's events after its bucket 0, when its head says it went on elsewhere."""
        if head is None or head // self._chain.width == 0:
            return
        with TRANSLATED:
            rows = stream_rows(self._chain, self._live(), self._q, stream_id, head, None, None, False)
        for row in rows:
            if row[7] > upto:  # a stream's positions rise: the rest came after the plan
                return
            yield stored(stream_id, row)

    def _replica(self, token: int, spread: int) -> Any:
        """An up replica of the range holding ``token`` (spread over replicas by split); None
        leaves the choice to the load-balancing policy."""
        token_map = self._cluster.metadata.token_map
        if token_map is None:
            return None
        replicas = [h for h in token_map.get_replicas(self._keyspace, Murmur3Token(token)) if h.is_up]
        return replicas[spread % len(replicas)] if replicas else None
