"""``python -m benchmarks run --store cassandra://...``: es_core's Cassandra backend against the
raw-driver floor, at the same concurrency (one request at a time)."""

from __future__ import annotations

import importlib
import time
from typing import Any

from es_core import MAX_EVENTS_PER_APPEND

from .measures import figure, measure_appends, measure_loads, seed
from .subjects import CassandraFloor, EsCore, Subject
from .target import Target
from .timing import Log
from .workload import member_id, member_plan

CASSANDRA_MEMBERS = 20

class CassandraUnavailable(Exception):
    """The Cassandra backend or its node cannot be reached: reported, not raised."""

def run_cassandra(config: Any, target: Target, log: Log) -> Any:
    """es_core's Cassandra backend against the raw-driver floor, at the same concurrency (one
    request at a time): appends, batch appends and loads. Raises ``CassandraUnavailable`` (the
    run reports ``"unavailable"`` and why) when the backend or its node cannot be reached.
    The keyspace outlives the run, so every run writes streams of its own; sizes are capped
    (``CASSANDRA_MEMBERS``) as conditional writes take milliseconds each."""
    try:
        importlib.import_module("es_core.stores.cassandra")
    except ImportError as exc:
        raise CassandraUnavailable(f"es_core.stores.cassandra cannot be imported ({exc})") from exc
    from es_core import EventSourcingError, open_store

    from .floors import cassandra_floor

    try:
        store = open_store(target.url)
    except EventSourcingError as exc:
        raise CassandraUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        session = getattr(store, "session", None)
        es = EsCore(store)
        subjects: dict[str, Subject] = {"es_core": es}
        if session is not None:
            subjects["floor"] = CassandraFloor(cassandra_floor(session))
        run_tag = f"c{time.time_ns()}"
        members, events = min(config.members, CASSANDRA_MEMBERS), min(config.events, MAX_EVENTS_PER_APPEND)
        plans = [member_plan(i, events, seed=config.seed, prefix=f"{run_tag}m") for i in range(members)]
        log(f"cassandra: seeding {members} members x {events} events")
        batch = seed(subjects, plans, min(events, 100), f"{run_tag}m", log, "batch append")
        ids = [member_id(i, f"{run_tag}m") for i in range(members)]
        log("cassandra: loading")
        load = measure_loads(subjects, ids, config.rounds, config.seed, log, "load")
        log("cassandra: appending one event per command")
        append = measure_appends(subjects, min(config.append_members, 4), min(config.append_commands, 30),
                                 config.rounds, config.seed, log, "append", prefix=f"{run_tag}r")
        return {
            "members": members, "events_per_member": events,
            "floor": "raw driver, conditional inserts" if session is not None
            else "unavailable: the store exposes no session",
            "append": figure(append, "events_per_s"),
            "batch_append": figure(batch, "events_per_s", latency=False),
            "load": figure(load, "aggregates_per_s"),
        }
    finally:
        store.close()
