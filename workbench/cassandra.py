"""Cassandra for the notebooks: drop a notebook's keyspace, show the layout, and count a
stream's rows per partition, through the backend's own inspection methods
(``CassandraStore.drop``, ``.schema()``, ``.partitions()``, ``.bucket_width``).

Imported lazily: the driver is an optional extra, and only notebook 8 (or ``ES_STORE_URL``
naming Cassandra) needs it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from cassandra.query import BatchStatement

from es_core import EventStore
from es_core.stores.cassandra import CassandraStore

from .distributed import PartitionReport


def drop_keyspace(url: str) -> None:
    """Drop the URL's keyspace, so the next open creates it empty (a fresh notebook store)."""
    CassandraStore.drop(url)


def cql_layout(store: EventStore) -> dict[str, str]:
    """The CQL that creates the store's keyspace, tables and index, by name."""
    if not isinstance(store, CassandraStore):
        raise TypeError(f"not a Cassandra store: {store!r}")
    return dict(store.schema())


def cassandra_partitions(store: EventStore, stream_id: str) -> PartitionReport:
    """Rows per ``(stream_id, bucket)`` partition of one stream."""
    if not isinstance(store, CassandraStore):
        raise TypeError(f"not a Cassandra store: {store!r}")
    rows = store.partitions(stream_id)
    frame = pd.DataFrame(rows, columns=["bucket", "rows", "first_version", "last_version", "head"])
    frame.insert(0, "partition", [f"({stream_id}, {bucket})" for bucket in frame["bucket"]])
    width = store.bucket_width
    notes = [
        f"events partitioned by (stream_id, bucket); bucket = (first version of the append - 1) // {width}",
        f"a partition holds about {width} rows (an append that crosses the boundary stays whole in its first one)",
    ]
    total = int(frame["rows"].sum()) if len(frame) else 0
    return PartitionReport(stream_id, total, frame, width, notes)


def statement_text(query: Any) -> str:
    """The CQL of a request as the driver sends it: a prepared statement's text, a plain
    statement's string, or a batch's (conditional) members."""
    if isinstance(query, BatchStatement):
        return f"BEGIN BATCH  -- {len(query)} statements, one partition\n  ...\nAPPLY BATCH"
    prepared = getattr(query, "prepared_statement", None)
    if prepared is not None:
        return str(prepared.query_string)
    return str(getattr(query, "query_string", query))


@contextmanager
def captured_statements(store: EventStore) -> Iterator[list[str]]:
    """Inside the block, every request the store's driver session sends, as CQL text (through
    the driver's request-init listener: what goes to the node, not a copy in this project)."""
    if not isinstance(store, CassandraStore):
        raise TypeError(f"not a Cassandra store: {store!r}")
    seen: list[str] = []
    lock = threading.Lock()

    def listener(future: Any) -> None:
        with lock:
            seen.append(statement_text(future.query))

    store.session.add_request_init_listener(listener)
    try:
        yield seen
    finally:
        store.session.remove_request_init_listener(listener)
