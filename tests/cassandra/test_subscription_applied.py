"""AppliedPositions on a real node: an at-least-once Cassandra read model that passes over a
redelivered page, so each event's effect lands once even when the page is handed over twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from es_core import NewEvent, SubscriptionConflictError

pytest.importorskip("cassandra")
from es_core.subscriptions import Delivery, Subscription
from es_core.subscriptions.cassandra import AppliedPositions, CassandraCheckpoints

pytestmark = pytest.mark.cassandra


def test_a_redelivered_page_is_recognised_and_its_effects_not_repeated(feed_store: Any,
                                                                        sid: Callable[..., str]) -> None:
    name, table = sid("applied"), f"{feed_store.keyspace}.applied_totals"
    session = feed_store.session
    session.execute(f"CREATE TABLE IF NOT EXISTS {table} (sub text, stream_id text, total int,"
                    " PRIMARY KEY (sub, stream_id))")
    streams = [sid("a"), sid("b")]
    for i in range(6):
        feed_store.append(streams[i % 2], [NewEvent(event_type="Credited", data={"amount": i + 1})])
    applied = AppliedPositions(feed_store, name)
    checkpoints = CassandraCheckpoints(feed_store)
    calls: list[int] = []

    def add(d: Delivery) -> None:  # an accumulation: not idempotent by itself
        calls.append(d.position)
        stream = d.record.stream_id
        if stream not in streams or not applied.is_new(stream, d.position):
            return
        row = d.tx.execute(f"SELECT total FROM {table} WHERE sub = %s AND stream_id = %s", (name, stream)).one()
        total = (row[0] if row else 0) + d.record.data["amount"]
        d.tx.execute(f"INSERT INTO {table} (sub, stream_id, total) VALUES (%s, %s, %s)", (name, stream, total))
        applied.record(stream, d.position)

    first = Subscription(feed_store, checkpoints, name, add, page_size=1000)
    first.catch_up()
    mine = [r.position for r in feed_store.read_all() if r.stream_id in streams]
    assert set(mine) <= set(calls)

    # a copy whose position was not stored (a crash after the effects, before the checkpoint):
    # the same page again
    checkpoints._set(name, reset_to=0)
    again = Subscription(feed_store, checkpoints, name, add, page_size=1000)
    again.catch_up()
    assert [c for c in calls if c in mine] == mine + mine  # delivered twice: at least once
    totals = dict(session.execute(f"SELECT stream_id, total FROM {table} WHERE sub = %s", (name,)).all())
    assert totals == {streams[0]: 1 + 3 + 5, streams[1]: 2 + 4 + 6}  # applied once
    assert applied.position(streams[0]) == mine[-2] and applied.position(streams[1]) == mine[-1]
    applied.clear()
    assert applied.position(streams[0]) == 0


def test_a_page_from_a_copy_that_lost_its_lease_is_refused(feed_store: Any, sid: Callable[..., str]) -> None:
    name = sid("lease")
    checkpoints = CassandraCheckpoints(feed_store)
    Subscription(feed_store, checkpoints, name, lambda d: None)
    checkpoints.acquire(name, "host/1/a", 30)
    with pytest.raises(SubscriptionConflictError), checkpoints.page(name, "host/2/b", 0, 0.0):
        pass
    checkpoints.release(name, "host/1/a")
