"""The feed's tables on a real node: announcements spread over shards, a shard that cannot be
closed holds the feed and is reported, and a keyspace in the first feed layout is refused, then
upgraded in place with its events readable through the feed."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")

from cassandra.query import BatchStatement

import es_core.stores.cassandra_feed_reader as reader_module
from es_core import NewEvent, StoreLayoutError, open_store
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_feed import position_at, shard_of, slot_of
from es_core.stores.cassandra_schema import schema_cql
from tests.cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra
Sid = Callable[..., str]


def test_announcements_spread_over_shards_and_a_settle_covers_them_all(feed_store: CassandraStore, sid: Sid) -> None:
    streams = [sid(f"spread{i}") for i in range(48)]
    results = {s: feed_store.append(s, [NewEvent(event_type="Tick", data={})]) for s in streams}
    shards = {shard_of(s, feed_store.feed_shards) for s in streams}
    assert feed_store.feed_shards == 16 and len(shards) >= 10
    announced = feed_store.session.prepare("SELECT stream_id FROM feed_announcements WHERE shard = ? AND slot = ?")
    for s, result in results.items():
        assert result.last_position is not None
        rows = feed_store.session.execute(announced, (shard_of(s, 16), slot_of(result.last_position)))
        assert s in {r[0] for r in rows}
    first = min(r.last_position or 0 for r in results.values())
    settled = feed_store.settled_position()
    seen = {r.stream_id for r in feed_store.read_all(after=first - 1) if r.position <= settled}
    assert set(streams) <= seen


def test_a_shard_that_cannot_be_closed_holds_the_feed_and_is_reported(
    feed_store: CassandraStore, feed_url: str, sid: Sid, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = reader_module.execute_concurrent

    def shard_three_down(session: Any, calls: list[Any], **kwargs: Any) -> list[Any]:
        results = real(session, calls, **kwargs)
        if calls and isinstance(calls[0][0], BatchStatement):  # the closing markers, one per shard
            results[3] = (False, RuntimeError("replicas of shard 3 down"))
        return results

    with open_store(feed_url) as reader:
        assert isinstance(reader, CassandraStore)
        reader.settled_position()
        appended = feed_store.append(sid("unclosed"), [NewEvent(event_type="Tick", data={})])
        assert appended.last_position is not None
        monkeypatch.setattr(reader_module, "execute_concurrent", shard_three_down)
        assert reader.settled_position() < appended.last_position
        holes = reader.feed_status().holes
        assert [(h.stream_id, h.shard) for h in holes] == [(None, 3)] and "shard 3 down" in holes[0].error
        monkeypatch.setattr(reader_module, "execute_concurrent", real)
        assert reader.settled_position() >= appended.last_position
        assert reader.feed_status().holes == []


# The first feed layout, as earlier versions created it (the events table is unchanged).
_LAYOUT_1 = [
    "CREATE TABLE {ks}.feed_partitions (slot bigint, stream_id text, bucket bigint, first_version bigint,"
    " PRIMARY KEY ((slot), stream_id, bucket, first_version))",
    "CREATE TABLE {ks}.feed_slots (era bigint, slot bigint, PRIMARY KEY ((era), slot))",
    "CREATE TABLE {ks}.feed_eras (shard int, era bigint, PRIMARY KEY ((shard), era))",
    "CREATE TABLE {ks}.feed_writers (writer int PRIMARY KEY, owner uuid)",
    "CREATE TABLE {ks}.store_settings (name text PRIMARY KEY, value bigint)",
]


def _layout_1_keyspace(url: str, keyspace: str, streams: dict[str, int]) -> dict[str, list[int]]:
    """A keyspace written by an earlier version: each stream's events, announced the old way."""
    CassandraStore.drop(url)
    cql = schema_cql(keyspace, 1)
    statements = [cql["keyspace"], cql["events"], cql["snapshots"], *(s.format(ks=keyspace) for s in _LAYOUT_1)]
    statements.append(cql["events_by_event_id"])

    def build(session: Any, _: str) -> dict[str, list[int]]:
        for statement in statements:
            session.execute(statement, timeout=120)
            session.cluster.control_connection.wait_for_schema_agreement(wait_time=60)
        session.execute(f"INSERT INTO {keyspace}.store_settings (name, value) VALUES ('bucket_width', 10000)")
        session.execute(f"INSERT INTO {keyspace}.store_settings (name, value) VALUES ('feed_settled', 0)")
        positions: dict[str, list[int]] = {}
        base = position_at(time.time_ns() // 1000 - 120_000_000)  # two minutes ago, writer 4095
        for i, (stream_id, count) in enumerate(streams.items()):
            positions[stream_id] = [base + ((i * 100 + v) << 12) for v in range(1, count + 1)]
            slot = slot_of(positions[stream_id][0])
            for v, position in enumerate(positions[stream_id], start=1):
                session.execute(
                    f"INSERT INTO {keyspace}.events (stream_id, bucket, version, event_id, event_type, schema_version,"
                    " data, metadata, recorded_at, position) VALUES (%s, 0, %s, %s, 'Tick', 1, %s, %s, %s, %s)",
                    (stream_id, v, uuid.uuid4(), f'{{"v":{v}}}'.encode(), b"{}", time.time_ns() // 1000, position),
                )
            session.execute(
                f"UPDATE {keyspace}.events SET head = %s, head_id = %s, head_position = %s, fence = 0"
                " WHERE stream_id = %s AND bucket = 0",
                (count, uuid.uuid4(), positions[stream_id][-1], stream_id),
            )
            session.execute(
                f"INSERT INTO {keyspace}.feed_partitions (slot, stream_id, bucket, first_version)"
                " VALUES (%s, %s, 0, 1)",
                (slot, stream_id),
            )
            session.execute(f"INSERT INTO {keyspace}.feed_slots (era, slot) VALUES (%s, %s)", (slot >> 15, slot))
            session.execute(f"INSERT INTO {keyspace}.feed_eras (shard, era) VALUES (0, %s)", (slot >> 15,))
        return positions

    return CassandraStore._with_session(url, build)  # type: ignore[no-any-return]


def test_a_keyspace_in_the_first_feed_layout_is_refused_then_upgraded_in_place() -> None:
    keyspace = "es_test_layout_one"
    url = cassandra_url_or_skip(keyspace)
    positions = _layout_1_keyspace(url, keyspace, {"old-a": 3, "old-b": 2})
    with pytest.raises(StoreLayoutError, match="cassandra_upgrade"):
        open_store(url)
    done = subprocess.run(
        [sys.executable, "-m", "es_core.stores.cassandra_upgrade", url], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "2 announcements copied" in done.stdout
    with open_store(url) as store:
        assert [(r.stream_id, r.version, r.position) for r in store.read_all()] == sorted(
            ((s, v, p) for s, ps in positions.items() for v, p in enumerate(ps, start=1)), key=lambda item: item[2]
        )
        assert store.stream_version("old-a") == 3
        later = store.append("old-a", [NewEvent(event_type="Tick", data={"v": 4})], 3)
        assert later.last_position is not None and store.settled_position() >= later.last_position
        assert [r.version for r in store.read_all() if r.stream_id == "old-a"] == [1, 2, 3, 4]
    assert CassandraStore.upgrade(url) == 2  # running it again changes nothing
    with open_store(url) as again:
        assert again.stream_version("old-a") == 4
