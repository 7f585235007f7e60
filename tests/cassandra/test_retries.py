"""Retries with ``Expect.ANY`` and ``STREAM_EXISTS`` on a real node: the original append of the
same ids may commit at any moment while the retry runs, and the ids are still stored once.

The injection point sits right after the retry's id lookup, the moment the earlier order
(look up the ids once, then read the version and write) could not see: the original commits
there, and a third writer appends after it, so the retry's batch is no longer the stream's latest
append (which the conditional write's ``head_id`` check would recognise on its own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from es_core import Expect, NewEvent, open_store
from es_core.stores.cassandra import CassandraStore

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


@pytest.mark.parametrize("mode", [Expect.ANY, Expect.STREAM_EXISTS])
@pytest.mark.parametrize("size", [1, 3])
def test_a_retry_racing_its_original_stores_the_ids_once(
    layout: CassandraStore, sid: Sid, mode: Expect, size: int
) -> None:
    s = sid("any-retry")
    layout.append(s, [NewEvent(event_type="Tick", data={"n": 0})])
    batch = [NewEvent(event_type="Tick", data={"n": 1 + i}) for i in range(size)]
    original = open_store(layout.url)  # the first attempt, still in flight when the client retries
    appender = layout._appender
    real_find_ids = appender.find_ids
    lookups: list[int] = []

    def original_commits_after_the_lookup(stream_id: str, events: list[Any]) -> dict[Any, Any]:
        found = real_find_ids(stream_id, events)
        if not lookups:  # the original lands, and a third writer appends after it
            original.append(s, batch, original.stream_version(s))
            original.append(s, [NewEvent(event_type="Tick", data={"n": 100})], size + 1)
        lookups.append(len(found))
        return found

    appender.find_ids = original_commits_after_the_lookup  # type: ignore[method-assign]
    try:
        retry = layout.append(s, batch, mode)
    finally:
        del appender.find_ids
        original.close()
    stored = layout.read_stream(s)
    assert [e.data["n"] for e in stored] == [*range(size + 1), 100], "the retry stored the ids a second time"
    assert retry.duplicate and (retry.first_version, retry.last_version) == (2, size + 1)
    assert lookups[0] == 0  # the first lookup missed the original: the conditional write caught it


def test_a_retry_of_an_append_that_landed_long_ago_is_found_through_the_index(layout: CassandraStore, sid: Sid) -> None:
    s = sid("any-old")
    batch = [NewEvent(event_type="Tick", data={"n": i}) for i in range(2)]
    first = layout.append(s, batch)
    for n in range(25):  # many appends later, across partitions (bucket width 10)
        layout.append(s, [NewEvent(event_type="Tick", data={"n": 10 + n})])
    again = layout.append(s, batch, Expect.ANY)
    assert again.duplicate and (again.first_version, again.last_version) == (first.first_version, first.last_version)
    assert again.last_position == first.last_position
    assert layout.stream_version(s) == 27
