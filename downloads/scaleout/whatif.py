"""What-if replays on a Dask cluster: one task per split of the recorded store, each replaying
its members into a memory store of its own; the parts combine into the report the
single-process ``downloads.whatif`` gives (``downloads.whatif.combine``)."""

from __future__ import annotations

import time
from typing import Any

from es_core import EventStore

from ..catalogue import Catalogue, load_catalogue
from ..errors import ScaleOutError
from ..rules import RuleSet
from ..whatif import WhatIfReport, combine
from .cluster import DEFAULT_RETRIES, Progress, default_splits, run_tasks
from .tasks import replay_split
from .worker_keys import worker_keys


def whatif(
    store: EventStore,
    rules: RuleSet,
    *,
    client: Any,
    catalogue: Catalogue | None = None,
    max_changes: int = 1000,
    splits: int | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    kek_variable: str | None = None,
) -> WhatIfReport:
    """``downloads.whatif(store, rules, ...)`` with the replay spread over the cluster behind
    ``client``, in about ``splits`` tasks (default: a few per worker thread). ``store`` plans
    the splits; workers open it again from its URL, so it must be one they can reach. On a
    protected store each worker reads the key-encryption key from its own environment
    variable ``kek_variable`` (default ``ES_KEK``); it is never sent to them."""
    started = time.perf_counter()
    shareable(store)
    keys = worker_keys(store, kek_variable)
    plan = store.split(splits or default_splits(client))
    parts = run_tasks(
        client, replay_split, plan, rules, catalogue or load_catalogue(), max_changes, keys,
        retries=retries, progress=progress,
    )
    return combine(parts, rules, max_changes=max_changes, started=started)


def shareable(store: EventStore) -> EventStore:
    """``store``, if worker processes can open it from its URL."""
    if store.scheme == "memory":
        raise ScaleOutError("a memory:// store lives in one process: workers cannot read it; use SQLite or Cassandra")
    return store
