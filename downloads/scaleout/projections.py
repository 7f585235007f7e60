"""Projection rebuilds on a Dask cluster: fresh read models fed one split of the store each, on
the workers, merged here into the ``ReadModels`` a serial ``rebuild()`` gives. The merged
models stand at the plan's cut of the log, so ``catch_up()`` goes on from there."""

from __future__ import annotations

from typing import Any

from es_core import EventStore

from ..projections import ReadModels
from .cluster import DEFAULT_RETRIES, Progress, default_splits, run_tasks
from .tasks import project_split
from .whatif import shareable
from .worker_keys import worker_keys


def rebuild(
    store: EventStore,
    *,
    client: Any,
    splits: int | None = None,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    kek_variable: str | None = None,
) -> ReadModels:
    """``ReadModels(store).rebuild()`` spread over the cluster behind ``client``, in about
    ``splits`` tasks (default: a few per worker thread). On a protected store each worker reads
    the key-encryption key from its own environment variable ``kek_variable`` (default
    ``ES_KEK``); it is never sent to them."""
    shareable(store)
    keys = worker_keys(store, kek_variable)
    plan = store.split(splits or default_splits(client))
    models = ReadModels(store)
    handled = 0
    for part, count in run_tasks(client, project_split, plan, keys, retries=retries, progress=progress):
        models.merge(part)
        handled += count
    models.mark_rebuilt(plan[0].upto, handled)  # every split stops at the plan's cut
    return models
