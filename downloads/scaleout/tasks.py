"""What a worker runs: plain functions of a split (or of a range of members), importable by
name in every worker process. Nothing here imports Dask.

Each worker process opens a store once per URL and keeps it (``store_at``): a Cassandra
handle is a driver session with its connections, shared by every task the worker runs. A task
on a protected store gets ``WorkerKeys`` (no secret) and protects the worker's handle with the
key-encryption key from the worker's own environment.
"""

from __future__ import annotations

import atexit
import threading
from datetime import datetime
from typing import Any

from es_core import Decoded, EventStore, StoreError, open_store
from es_core.splits import StoreSplit
from es_core.stores import names_missing_file

from ..catalogue import Catalogue
from ..events import new_registry
from ..projections import ReadModels
from ..rules import RuleSet
from ..simulator import SimulationReport, simulate
from ..whatif import WhatIfPart, replay
from .copy import StreamsCopy, contents_of, copy_into
from .worker_keys import WorkerKeys, protect_on_worker

_stores: dict[tuple[str, str, str], EventStore] = {}
_lock = threading.Lock()


def store_at(url: str, keys: WorkerKeys | None = None) -> EventStore:
    """This process's handle on the store at ``url`` (opened on first use), protected with
    ``keys`` when given (a handle per scope and variable). A SQLite file must exist already:
    opening would create an empty one and every split would read as empty."""
    key = (url, "", "") if keys is None else (url, keys.scope, keys.variable)
    with _lock:
        store = _stores.get(key)
        if store is None:
            if names_missing_file(url):
                raise StoreError(f"no store at {url} on this worker (workers must see the same file)")
            store = open_store(url)
            try:
                if keys is not None:
                    protect_on_worker(store, keys)
            except BaseException:
                store.close()
                raise
            _stores[key] = store
        return store


@atexit.register
def close_stores() -> None:
    """Close this process's handles (they reopen on the next task that needs them)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def replay_split(
    split: StoreSplit, rules: RuleSet, catalogue: Catalogue, max_changes: int, keys: WorkerKeys | None = None
) -> WhatIfPart:
    """The what-if replay of one split's members, into a memory store of its own."""
    store = store_at(split.url, keys)
    return replay(store.read_split(split), rules, catalogue=catalogue, max_changes=max_changes)


def simulate_apart(
    only: range, members: int, days: int, seed: int, rules: RuleSet, catalogue: Catalogue, start: datetime
) -> tuple[SimulationReport, StreamsCopy]:
    """Simulate the members ``only`` holds into a memory store of this task's, and hand back
    its streams (for a single writer to copy in) with the report."""
    with open_store("memory://") as scratch:
        report = simulate(
            scratch, members=members, days=days, seed=seed, rules=rules, catalogue=catalogue, start=start, only=only
        )
        return report, contents_of(scratch)


def simulate_into(
    only: range, url: str, members: int, days: int, seed: int, rules: RuleSet, catalogue: Catalogue, start: datetime
) -> SimulationReport:
    """``simulate_apart``, then copy the streams into the store at ``url`` from this worker (a
    store that takes concurrent writers). Run again, it writes nothing twice."""
    report, streams = simulate_apart(only, members, days, seed, rules, catalogue, start)
    copy_into(store_at(url), streams)
    return report


def project_split(split: StoreSplit, keys: WorkerKeys | None = None) -> tuple[tuple[Any, ...], int]:
    """Fresh read models fed one split's records, and how many records they were fed."""
    store = store_at(split.url, keys)
    registry = new_registry()
    models = ReadModels.fresh_models()
    handled = 0
    for record in store.read_split(split):
        for event in registry.decode(record):
            item = Decoded(record, event)
            for model in models:
                model.handle(item)
        handled += 1
    return models, handled
