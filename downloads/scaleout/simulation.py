"""Simulations on a Dask cluster: the population cut into contiguous ranges of members, one task
per range. Members never interact and each draws from a seed of its own, so every member's
stream is exactly the one the single-process ``downloads.simulate`` writes with the same seed.

Each task simulates its members into a memory store of its own, then the streams are copied
into the target as they were recorded (``copy``):

* into Cassandra, which takes concurrent writers, by each task from its worker;
* into SQLite (one writer at a time) or memory, by this process, one task's streams as each
  arrives, while the other tasks still run.

Either way a task that runs again (its worker died) writes nothing twice.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from es_core import EventStore, InvalidInputError

from ..catalogue import Catalogue, load_catalogue
from ..rules import RuleSet, load_rules
from ..simulator import DEFAULT_START, SimulationReport, combine_reports
from .cluster import DEFAULT_RETRIES, Progress, default_splits, run_tasks
from .copy import StreamsCopy, copy_into
from .tasks import simulate_apart, simulate_into

CONCURRENT_WRITERS = ("cassandra",)
"""Store schemes whose workers append in parallel; the others take one writer."""


def simulate(
    store: EventStore,
    *,
    client: Any,
    members: int,
    days: int,
    seed: int = 1,
    rules: RuleSet | None = None,
    catalogue: Catalogue | None = None,
    start: datetime = DEFAULT_START,
    splits: int | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
) -> SimulationReport:
    """``downloads.simulate(store, ...)`` spread over the cluster behind ``client`` in about
    ``splits`` tasks (default: a few per worker thread). ``store`` must be empty."""
    started = time.perf_counter()
    if members < 1 or days < 1:
        raise InvalidInputError(f"members and days must be >= 1, not {members} and {days}")
    if store.head_position() > 0:
        raise InvalidInputError(f"{store!r} already holds events; simulate into an empty store")
    count = min(members, splits or default_splits(client))
    ranges = [range(members * i // count, members * (i + 1) // count) for i in range(count)]
    common = (members, days, seed, rules or load_rules(), catalogue or load_catalogue(), start)
    if store.scheme in CONCURRENT_WRITERS:
        parts = run_tasks(client, simulate_into, ranges, store.url, *common, retries=retries, progress=progress,
                          what="member range")
    else:
        clock = store.clock
        try:
            parts = run_tasks(client, simulate_apart, ranges, *common, retries=retries, progress=progress,
                              what="member range", consume=lambda part: _copied(store, part))
        finally:
            store.clock = clock
    return combine_reports(parts, time.perf_counter() - started)


def _copied(store: EventStore, part: tuple[SimulationReport, StreamsCopy]) -> SimulationReport:
    report, streams = part
    copy_into(store, streams)
    return report
