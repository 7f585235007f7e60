"""Helpers for the distributed notebook: find a Cassandra node (or explain the fallback), show a
store's table layout, measure a stream's partitions, and race two writers.

A notebook asks :func:`distributed_store` for a store: Cassandra when ``ES_STORE_URL`` names it
or a node answers on ``ES_CASSANDRA_HOST:ES_CASSANDRA_PORT`` (default ``127.0.0.1:9042``);
otherwise a per-notebook SQLite file, with the reason, unless ``ES_REQUIRE_CASSANDRA=1``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from es_core import ConcurrencyError, EventStore, NewEvent, RecordedEvent, open_store
from es_core.stores import sqlite_path

from .settings import notebook_store, notebook_store_url, settings, with_query


class CassandraRequiredError(RuntimeError):
    """``ES_REQUIRE_CASSANDRA=1`` and no Cassandra node answers."""


def cassandra_address() -> tuple[str, int]:
    return os.environ.get("ES_CASSANDRA_HOST", "127.0.0.1"), int(os.environ.get("ES_CASSANDRA_PORT", "9042"))


def default_cassandra_url(keyspace: str = "es_workbench") -> str:
    host, port = cassandra_address()
    return f"cassandra://{host}:{port}/{keyspace}?replication_factor=1"


def node_answers(url: str | None = None, *, timeout: float = 1.5) -> bool:
    """Whether something accepts connections at the URL's host and port (or the default node)."""
    if url:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 9042
    else:
        host, port = cassandra_address()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Backend:
    """Which store a notebook got, and why."""

    scheme: str
    url: str
    fallback_reason: str | None = None

    @property
    def is_cassandra(self) -> bool:
        return self.scheme == "cassandra"

    def describe(self) -> str:
        if self.fallback_reason:
            return f"{self.scheme} at {self.url} (fallback: {self.fallback_reason})"
        return f"{self.scheme} at {self.url}"

    def _repr_html_(self) -> str:
        colour = "#2a9d8f" if self.is_cassandra else "#e9c46a"
        note = f"<br><small>{self.fallback_reason}</small>" if self.fallback_reason else ""
        return (
            f'<div style="border-left: 4px solid {colour}; padding: 4px 10px">'
            f"<b>{self.scheme}</b> <code>{self.url}</code>{note}</div>"
        )


def distributed_store(
    name: str,
    *,
    clock: Callable[[], datetime] | None = None,
    require: bool | None = None,
    cassandra_options: dict[str, str] | None = None,
) -> tuple[EventStore, Backend]:
    """A fresh store for notebook ``name`` on Cassandra if one is available, else on SQLite
    (raising :class:`CassandraRequiredError` instead when ``require`` or
    ``ES_REQUIRE_CASSANDRA=1``). ``cassandra_options`` are URL options (e.g. a small
    ``bucket_width``) used unless the URL already sets them."""
    cfg = settings()
    require = cfg.require_cassandra if require is None else require
    base = cfg.store_url if cfg.backend == "cassandra" else default_cassandra_url()
    if cfg.backend == "cassandra" or cassandra_options:
        present = dict(parse_qsl(urlsplit(base).query))
        extra = {k: v for k, v in (cassandra_options or {}).items() if k not in present}
        base = with_query(base, **extra) if extra else base
    if node_answers(base):
        url = notebook_store_url(name, base)
        return notebook_store(name, url=base, clock=clock), Backend("cassandra", url)
    host_port = urlsplit(base).netloc
    reason = f"no Cassandra node answers at {host_port}; start one with `scripts/cassandra-node start`"
    if require:
        raise CassandraRequiredError(reason + " (ES_REQUIRE_CASSANDRA=1)")
    sqlite_base = cfg.store_url if cfg.backend == "sqlite" and cfg.store_url else ""  # "": the default file
    url = notebook_store_url(name, sqlite_base)
    return notebook_store(name, url=sqlite_base, clock=clock), Backend("sqlite", url, reason)


# -- layout --------------------------------------------------------------------------------------


def table_layout(store: EventStore) -> dict[str, str]:
    """The store's tables as DDL, by name: CQL on Cassandra; SQL on SQLite, with its triggers."""
    if store.scheme == "sqlite":
        with sqlite3.connect(f"file:{sqlite_path(store.url)}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'trigger') ORDER BY type, name"
            ).fetchall()
        return {name: sql for name, sql in rows}
    if store.scheme == "cassandra":
        from .cassandra import cql_layout

        return cql_layout(store)
    return {}


@dataclass
class PartitionReport:
    """How a stream's events are spread over storage partitions."""

    stream_id: str
    events: int
    partitions: pd.DataFrame  # one row per partition: key, rows, first and last version
    max_rows_per_partition: int | None = None  # the backend's bound, when it has one
    notes: list[str] = field(default_factory=list)


def partition_report(store: EventStore, stream_id: str) -> PartitionReport:
    """Rows per storage partition for one stream. SQLite has no partitions: the whole stream is
    one range of one table, shown as one row."""
    if store.scheme == "cassandra":
        from .cassandra import cassandra_partitions

        return cassandra_partitions(store, stream_id)
    events = store.stream_version(stream_id)
    frame = pd.DataFrame(
        [{"partition": f"{stream_id} (one table, no partitions)", "rows": events, "first_version": 1,
          "last_version": events}]
    )  # fmt: skip
    return PartitionReport(stream_id, events, frame, None, [f"{store.scheme} keeps a stream in one table"])


def planned_partitions(records: Sequence[RecordedEvent], width: int) -> pd.DataFrame:
    """The partitions a Cassandra store with ``bucket_width=width`` gives these events of one
    stream, computed from the rule it follows (so it teaches on any backend): each append lands
    whole in bucket ``(first version - 1) // width``. One command is one append, so events that
    share a request id and a recording time, at consecutive versions, are one append."""
    appends: list[list[RecordedEvent]] = []
    for record in records:
        previous = appends[-1][-1] if appends else None
        request = record.metadata.get("request_id")
        same_append = (
            previous is not None
            and request is not None
            and previous.version == record.version - 1
            and (previous.metadata.get("request_id"), previous.recorded_at) == (request, record.recorded_at)
        )
        if same_append:
            appends[-1].append(record)
        else:
            appends.append([record])
    buckets: dict[int, list[int]] = {}
    for append in appends:
        buckets.setdefault((append[0].version - 1) // width, []).extend(r.version for r in append)
    stream_id = records[0].stream_id if records else ""
    rows = [
        {"partition": f"({stream_id}, {b})", "bucket": b, "rows": len(versions), "first_version": min(versions),
         "last_version": max(versions)}
        for b, versions in sorted(buckets.items())
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["partition", "bucket", "rows", "first_version", "last_version"])


# -- two writers -------------------------------------------------------------------------------


@dataclass
class RaceResult:
    """What happened when writers raced for the same stream versions."""

    rounds: int
    wins: dict[str, int]
    conflicts: dict[str, int]
    final_version: int
    versions_contiguous: bool
    errors: list[str] = field(default_factory=list)

    @property
    def total_conflicts(self) -> int:
        return sum(self.conflicts.values())

    def _repr_html_(self) -> str:
        from .render import card

        fields = {
            "rounds": self.rounds,
            "wins": ", ".join(f"{name}: {n}" for name, n in self.wins.items()),
            "conflicts (ConcurrencyError)": ", ".join(f"{name}: {n}" for name, n in self.conflicts.items()),
            "final version": self.final_version,
            "versions 1..n without gaps": self.versions_contiguous,
            "other errors": "; ".join(self.errors) or "none",
        }
        return card("Two writers raced", fields)


def race_writers(
    stores: dict[str, EventStore], stream_id: str, *, rounds: int = 20, event_type: str = "DeviceRegistered"
) -> RaceResult:
    """Each round, every writer reads the stream's version, waits for the others, then appends
    one event expecting that version: exactly one may win, the others get ``ConcurrencyError``.
    ``stores`` are separate handles (separate connections), as two service instances would have."""
    names = list(stores)
    wins = dict.fromkeys(names, 0)
    conflicts = dict.fromkeys(names, 0)
    errors: list[str] = []
    barrier = threading.Barrier(len(names))
    lock = threading.Lock()

    def writer(name: str) -> None:
        store = stores[name]
        for round_no in range(rounds):
            seen = store.stream_version(stream_id)
            try:
                barrier.wait(timeout=30)  # everyone has read the same version
            except threading.BrokenBarrierError:
                return
            # a well-formed domain event, so read models over the same log can decode it
            data = {"device_id": f"{name}-{round_no}", "kind": "race", "at": datetime.now(UTC).isoformat()}
            event = NewEvent(event_type=event_type, data=data, metadata={"writer": name})
            try:
                store.append(stream_id, [event], seen)
                tally = wins
            except ConcurrencyError:
                tally = conflicts
            except Exception as exc:  # reported, not hidden: the notebook asserts there are none
                tally = None
                with lock:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
            if tally is not None:
                with lock:
                    tally[name] += 1
            try:
                barrier.wait(timeout=30)  # everyone has appended before the next read
            except threading.BrokenBarrierError:
                return

    threads = [threading.Thread(target=writer, args=(name,), name=f"writer-{name}") for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = stores[names[0]]
    versions = [r.version for r in reader.read_stream(stream_id)]
    return RaceResult(
        rounds=rounds,
        wins=wins,
        conflicts=conflicts,
        final_version=reader.stream_version(stream_id),
        versions_contiguous=versions == list(range(1, len(versions) + 1)),
        errors=errors,
    )


@contextmanager
def captured_statements(store: EventStore) -> Iterator[list[str]]:
    """The CQL the store's driver sends inside the block (Cassandra only; see
    ``workbench.cassandra.captured_statements``)."""
    from .cassandra import captured_statements as capture  # the driver is an optional extra

    with capture(store) as seen:
        yield seen


def second_handle(store: EventStore, clock: Callable[[], datetime] | None = None) -> EventStore:
    """Another handle on the same data (a new connection), as a second service instance has."""
    return open_store(store.url, clock=clock)
