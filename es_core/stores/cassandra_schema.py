"""The Cassandra layout: the CQL that creates it, and creating or dropping it.

Every statement is ``IF NOT EXISTS``, so concurrent first use is safe on one node; the driver
waits for schema agreement after each one. On a multi-node cluster, create the schema once
(``CassandraStore.create(url)``, or the CQL in ``docs/cassandra.md``) before many processes
start: concurrent ``CREATE TABLE`` on different coordinators is a known source of disagreement.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from ..errors import InvalidStoreUrlError, StoreError, StoreLayoutError

KEYSPACE_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,47}\Z")
"""Unquoted CQL identifiers are case-insensitive and at most 48 characters."""

DEFAULT_BUCKET_WIDTH = 10_000
"""Events per stream partition (nominal): a tenth of ScyllaDB's 100,000-row large-partition
warning, so even a partition that overflows by one whole batch (at most 999 rows) stays far below it."""

MIN_BUCKET_WIDTH = 10

TABLES: dict[str, str] = {
    # One partition per (stream, bucket). The static columns describe the partition's latest
    # append and are what the conditional batch checks: they live in the same partition as the
    # rows it inserts, so one Paxos round checks and writes both.
    "events": """
CREATE TABLE IF NOT EXISTS {ks}.events (
    stream_id      text,
    bucket         bigint,          -- (first version of the append that wrote the row - 1) // bucket_width
    version        bigint,
    head           bigint static,   -- the stream's version after the latest append into this partition
    head_id        uuid   static,   -- that append's first event id (recognises a retry of it)
    head_position  bigint static,   -- that append's last global position (keeps a stream's positions rising)
    fence          bigint static,   -- no append with a first position <= fence lands here (raised by readers)
    event_id       uuid,
    event_type     text,
    schema_version int,
    data           blob,            -- JSON
    metadata       blob,            -- JSON
    recorded_at    bigint,          -- microseconds since the Unix epoch, UTC
    position       bigint,          -- global log position
    PRIMARY KEY ((stream_id, bucket), version)
) WITH CLUSTERING ORDER BY (version ASC)""",
    # Snapshots never share a batch with events; newest first, so LIMIT 1 finds the latest.
    "snapshots": """
CREATE TABLE IF NOT EXISTS {ks}.snapshots (
    stream_id            text,
    version              bigint,
    state_type           text,
    state_schema_version int,
    state                blob,
    taken_at             bigint,    -- microseconds since the Unix epoch, UTC
    PRIMARY KEY (stream_id, version)
) WITH CLUSTERING ORDER BY (version DESC)""",
    # The global feed (``cassandra_feed``). An announcement: "this partition may receive events
    # with positions in this slot, from this version on", written before a handle's first append
    # there in the slot, in the partition of the stream's shard.
    "feed_announcements": """
CREATE TABLE IF NOT EXISTS {ks}.feed_announcements (
    shard         int,              -- crc32(stream_id) % feed_shards
    slot          bigint,           -- position >> 32: about one second of positions
    stream_id     text,
    bucket        bigint,
    first_version bigint,
    PRIMARY KEY ((shard, slot), stream_id, bucket, first_version)
)""",
    # Which slots of a shard have announcements, so readers skip empty seconds (an era is ~9.5 hours).
    "feed_shard_slots": """
CREATE TABLE IF NOT EXISTS {ks}.feed_shard_slots (
    shard int,
    era   bigint,                   -- slot >> 15
    slot  bigint,
    PRIMARY KEY ((shard, era), slot)
) WITH CLUSTERING ORDER BY (slot ASC)""",
    "feed_shard_eras": """
CREATE TABLE IF NOT EXISTS {ks}.feed_shard_eras (
    shard int,
    era   bigint,
    PRIMARY KEY ((shard), era)
) WITH CLUSTERING ORDER BY (era ASC)""",
    # Readers close slots: a shard's highest row is the last slot no writer may announce into
    # any more (each marker write also deletes the rows below it).
    "feed_closed": """
CREATE TABLE IF NOT EXISTS {ks}.feed_closed (
    shard int,
    upto  bigint,                   -- every slot <= upto is closed in this shard
    PRIMARY KEY ((shard), upto)
) WITH CLUSTERING ORDER BY (upto DESC)""",
    # Each store handle that appends holds a 12-bit writer number, which makes its positions
    # unique: it hands out only positions above the previous holder's reservation and up to its own.
    "feed_writers": """
CREATE TABLE IF NOT EXISTS {ks}.feed_writers (
    writer   int PRIMARY KEY,
    owner    uuid,                  -- null once released
    reserved bigint                 -- the holder's positions stay at or below this time (µs, cluster clock)
)""",
    # bucket_width and feed_shards (fixed when the keyspace is created), the feed layout and the
    # settled-position hint.
    "store_settings": """
CREATE TABLE IF NOT EXISTS {ks}.store_settings (
    name  text PRIMARY KEY,
    value bigint
)""",
}

EVENT_COLUMNS = "version, event_id, event_type, schema_version, data, metadata, recorded_at, position, head"
"""The columns the store reads for an event (``position`` at index 7, the static ``head`` at 8)."""

INDEXES: dict[str, str] = {
    # Storage-attached index: updated with the row, in the same write, so it cannot miss an
    # event. Used to recognise retries whose ids sit anywhere in the stream.
    "events_by_event_id": "CREATE CUSTOM INDEX IF NOT EXISTS events_by_event_id ON {ks}.events (event_id)"
    " USING 'StorageAttachedIndex'",
}


def keyspace_cql(keyspace: str, replication_factor: int, datacenter: str | None) -> str:
    if datacenter:
        replication = f"{{'class': 'NetworkTopologyStrategy', '{datacenter}': {replication_factor}}}"
    else:
        replication = f"{{'class': 'SimpleStrategy', 'replication_factor': {replication_factor}}}"
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}"


def schema_cql(keyspace: str, replication_factor: int = 3, datacenter: str | None = None) -> dict[str, str]:
    """Every statement that creates the layout, by object name, in creation order."""
    statements = {"keyspace": keyspace_cql(keyspace, replication_factor, datacenter)}
    statements.update({name: ddl.format(ks=keyspace).strip() for name, ddl in TABLES.items()})
    statements.update({name: ddl.format(ks=keyspace) for name, ddl in INDEXES.items()})
    return statements


def check_keyspace(name: str) -> str:
    if not KEYSPACE_PATTERN.match(name or ""):
        raise InvalidStoreUrlError(
            f"a keyspace is a lowercase letter then up to 47 lowercase letters, digits or '_', not {name!r}"
        )
    return name


def missing_objects(session: Any, keyspace: str) -> list[str]:
    """Tables and indexes of the layout that the keyspace lacks (all of them if it is missing)."""
    tables = {
        r[0]
        for r in session.execute("SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))
    }
    indexes = {
        r[0]
        for r in session.execute("SELECT index_name FROM system_schema.indexes WHERE keyspace_name = %s", (keyspace,))
    }
    return [t for t in TABLES if t not in tables] + [i for i in INDEXES if i not in indexes]


def refuse_expiring_tables(session: Any, keyspace: str) -> None:
    """Refuse a keyspace whose tables would expire rows the store relies on (all of them).

    A ``default_time_to_live`` on ``events`` would expire a partition's static ``head``: the
    stream would read as empty and ``NO_STREAM`` would write version 1 again. On the feed's
    tables it would drop announcements or closed-slot markers (events a reader never sees) or a
    writer number's reservation (a later holder could repeat its positions); on ``store_settings``
    the bucket width; on ``snapshots`` the only copy of truncated history."""
    rows = session.execute(
        "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
    )
    expiring = {name: ttl for name, ttl in rows if name in TABLES and ttl}
    if expiring:
        name, ttl = sorted(expiring.items())[0]
        raise StoreLayoutError(
            f"table {keyspace}.{name} has default_time_to_live = {ttl}: its rows would expire, and the store "
            f"relies on them (a stream whose head expired would start again at version 1). Remove the TTL "
            f"with `ALTER TABLE {keyspace}.{name} WITH default_time_to_live = 0`, then reopen"
            + (f" (also: {', '.join(sorted(expiring)[1:])})" if len(expiring) > 1 else "")
        )


def create_schema(session: Any, keyspace: str, replication_factor: int, datacenter: str | None) -> None:
    """Create whatever is missing. Idempotent; waits for schema agreement after each change."""
    for name, cql in schema_cql(keyspace, replication_factor, datacenter).items():
        session.execute(cql, timeout=120)
        if not schema_agreed(session):
            raise StoreError(f"Cassandra nodes did not agree on the schema after creating {name}")


def drop_keyspace(session: Any, keyspace: str) -> None:
    session.execute(f"DROP KEYSPACE IF EXISTS {check_keyspace(keyspace)}", timeout=120)
    schema_agreed(session)


def schema_agreed(session: Any) -> bool:
    """Wait (at most a minute) until the nodes agree on the schema.

    The control connection's wait is deprecated in favour of ``Session.wait_for_schema_agreement``,
    but that one reads ``system.local`` through the session's row factory and takes the store's
    plain tuples for a missing schema version: it never agrees. So the old one it is, quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(session.cluster.control_connection.wait_for_schema_agreement(wait_time=60))
