"""Feed layouts of a Cassandra keyspace: telling an old one from a current one, and upgrading it.

Layout 1 (before the feed was sharded and slots were closed explicitly) kept announcements in
``feed_partitions((slot), stream_id, bucket, first_version)``, listed slots in
``feed_slots((era), slot)`` and ``feed_eras((shard), era)``, and writer claims as TTL'd
``feed_writers(writer, owner)`` rows. Layout 2 (this version) keeps them per shard in
``feed_announcements``, ``feed_shard_slots`` and ``feed_shard_eras``, adds ``feed_closed``, and
gives ``feed_writers`` a ``reserved`` column; ``store_settings`` records ``feed_layout = 2``.

Handles of this version refuse a layout-1 keyspace with ``StoreLayoutError``: writing it in the
new layout while older handles still announce in the old one would hide their events from
readers. The upgrade, run once with every older handle stopped (``python -m
es_core.stores.cassandra_upgrade URL`` or ``CassandraStore.upgrade(url)``), creates the new
tables, copies every announcement into its shard, and records the layout. It is idempotent (a
run that stops half-way can be run again) and leaves the old tables in place; drop
``feed_partitions``, ``feed_slots`` and ``feed_eras`` once no older version will run again.
Events, snapshots and the settled position are not touched, so the feed reads the same log.
"""

from __future__ import annotations

import sys
from typing import Any

from cassandra.concurrent import execute_concurrent

from ..errors import StoreLayoutError
from .cassandra_feed import ERA_SHIFT, shard_of
from .cassandra_schema import create_schema

LAYOUT = 2
_OLD_TABLE = "feed_partitions"


def _tables(session: Any, keyspace: str) -> set[str]:
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    return {r[0] for r in rows}


def layout_of(session: Any, keyspace: str) -> int:
    """The keyspace's recorded feed layout (0 when none is recorded)."""
    if "store_settings" not in _tables(session, keyspace):
        return 0
    row = session.execute(f"SELECT value FROM {keyspace}.store_settings WHERE name = 'feed_layout'").one()
    return int(row[0]) if row is not None and row[0] is not None else 0


def check_layout(session: Any, keyspace: str) -> None:
    """Refuse a keyspace whose feed is still in layout 1."""
    if _OLD_TABLE in _tables(session, keyspace) and layout_of(session, keyspace) < LAYOUT:
        raise StoreLayoutError(
            f"keyspace {keyspace!r} keeps its global feed in the first layout (table {_OLD_TABLE}); stop every "
            "store handle of earlier versions, then upgrade it once with `python -m es_core.stores.cassandra_upgrade "
            "<url>` (or CassandraStore.upgrade(url)); events are kept"
        )


def mark_layout(session: Any, keyspace: str) -> None:
    """Record the current layout in a keyspace that has its tables (idempotent)."""
    if layout_of(session, keyspace) < LAYOUT:
        session.execute(f"INSERT INTO {keyspace}.store_settings (name, value) VALUES ('feed_layout', {LAYOUT})")


def upgrade_feed(session: Any, keyspace: str, shards: int) -> int:
    """Bring a layout-1 keyspace to layout 2; returns the announcements copied (0 if there was
    nothing to do). ``shards`` applies unless the keyspace has a shard count already."""
    tables = _tables(session, keyspace)
    if _OLD_TABLE not in tables:
        return 0
    create_schema(session, keyspace, 1, None)  # the keyspace exists: only missing tables are created
    columns = {
        r[0]
        for r in session.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = %s AND table_name = 'feed_writers'",
            (keyspace,),
        )
    }
    if "reserved" not in columns:
        session.execute(f"ALTER TABLE {keyspace}.feed_writers ADD reserved bigint", timeout=120)
        session.cluster.control_connection.wait_for_schema_agreement(wait_time=60)
    session.execute(
        f"INSERT INTO {keyspace}.store_settings (name, value) VALUES ('feed_shards', %s) IF NOT EXISTS", (shards,)
    )
    shards = int(session.execute(f"SELECT value FROM {keyspace}.store_settings WHERE name = 'feed_shards'").one()[0])
    announce = session.prepare(
        f"INSERT INTO {keyspace}.feed_announcements (shard, slot, stream_id, bucket, first_version)"
        " VALUES (?, ?, ?, ?, ?)"
    )
    slot_entry = session.prepare(f"INSERT INTO {keyspace}.feed_shard_slots (shard, era, slot) VALUES (?, ?, ?)")
    era_entry = session.prepare(f"INSERT INTO {keyspace}.feed_shard_eras (shard, era) VALUES (?, ?)")
    copied = 0
    for (era,) in list(session.execute(f"SELECT era FROM {keyspace}.feed_eras WHERE shard = 0")):
        for (slot,) in list(session.execute(f"SELECT slot FROM {keyspace}.feed_slots WHERE era = %s", (era,))):
            rows = session.execute(
                f"SELECT stream_id, bucket, first_version FROM {keyspace}.{_OLD_TABLE} WHERE slot = %s", (slot,)
            )
            calls: list[tuple[Any, tuple[Any, ...]]] = []
            touched: set[int] = set()
            for stream_id, bucket, first_version in rows:
                shard = shard_of(stream_id, shards)
                calls.append((announce, (shard, slot, stream_id, bucket, first_version)))
                touched.add(shard)
            for shard in touched:
                calls += [(slot_entry, (shard, slot >> ERA_SHIFT, slot)), (era_entry, (shard, slot >> ERA_SHIFT))]
            execute_concurrent(session, calls, concurrency=64, raise_on_first_error=True)
            copied += len(calls) - 2 * len(touched)
    mark_layout(session, keyspace)
    return copied


def main(argv: list[str]) -> int:
    from .cassandra import CassandraStore  # the facade imports this module

    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m es_core.stores.cassandra_upgrade cassandra://host/keyspace?...", file=sys.stderr)
        return 2
    copied = CassandraStore.upgrade(argv[0])
    print(f"feed layout {LAYOUT}: {copied} announcements copied")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
