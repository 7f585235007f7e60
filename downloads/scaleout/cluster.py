"""Connecting to a Dask cluster, and running one task per split on it.

``connect`` starts a ``LocalCluster`` of worker processes (one thread each: the replay is
pure Python, so threads would share one interpreter lock) or joins a running scheduler.
``run_tasks`` submits one task per item, retries a failed task, shows progress, and returns
every result in the items' order, or raises ``ScaleOutError`` naming the item that failed:
never a partial answer. A worker that dies mid-task is not an error: the scheduler runs its
tasks again elsewhere (up to ``distributed.scheduler.allowed-failures`` deaths per task).

Dask is imported here, lazily, and only here: ``import downloads`` never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from es_core import InvalidInputError

from ..errors import ScaleOutError

T = TypeVar("T")
Progress = Callable[[int, int], None]

SPLITS_PER_THREAD = 4
"""Splits per worker thread by default: enough that a slow split does not leave the other
workers idle at the end, few enough that per-task overhead stays small."""

DEFAULT_RETRIES = 2
"""Times a failed task is run again (a store that timed out, a worker that lost its connection)."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ScaleOutError(f"scaling out needs Dask: pip install 'es-workbench[dask]' ({exc})") from exc
    return distributed


@contextlib.contextmanager
def connect(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    timeout: float = 10.0,
    dashboard: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: on the running cluster at ``scheduler`` (``tcp://host:port``),
    or on a new ``LocalCluster`` of ``workers`` processes (default: one per core) that stops
    when the block ends. ``timeout``: seconds to wait for the scheduler to answer. A new
    cluster's workers inherit this process's environment (``ES_KEK``, which they need for a
    protected store); a running cluster's workers have only their own."""
    if workers is not None and scheduler is not None:
        raise InvalidInputError("give workers or a scheduler address, not both")
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise InvalidInputError(f"workers must be an int >= 1, not {workers!r}")
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ScaleOutError(f"no Dask scheduler answers at {scheduler} (waited {timeout:g} s): {exc}") from exc
        with client:
            try:
                yield client
            finally:
                _release_stores(client)
        return
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: the scheduler serves HTTP (health, metrics) even without the dashboard
        scheduler_kwargs={"dashboard": dashboard},
        silence_logs=logging.ERROR,
    )
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        try:
            yield client
        finally:
            _release_stores(client)


def _release_stores(client: Any) -> None:
    """Close the store handles the workers kept (a Cassandra handle that appended gives its feed
    writer number back), while their connections are still up. Best effort: a worker that is
    gone has nothing to close."""
    from .tasks import close_stores

    with contextlib.suppress(Exception):
        client.run(close_stores)


def default_splits(client: Any) -> int:
    """Splits to plan for the cluster behind ``client``: a few per worker thread."""
    threads: int = sum(client.nthreads().values())
    if threads < 1:
        raise ScaleOutError(f"the Dask cluster at {client.scheduler.address} has no workers")
    return threads * SPLITS_PER_THREAD


def run_tasks(
    client: Any,
    task: Callable[..., Any],
    items: Sequence[Any],
    *args: Any,
    retries: int = DEFAULT_RETRIES,
    progress: Progress | None = None,
    what: str = "split",
    consume: Callable[[Any], Any] | None = None,
) -> list[Any]:
    """``[task(item, *args) for item in items]``, each call a task on the cluster. ``consume``,
    when given, is called on each result as it arrives (in this process, one at a time) and
    its answer is kept instead: a single writer can take the results in while tasks still run."""
    distributed = _distributed()
    batch = uuid.uuid4().hex[:8]
    # Shared arguments go to the cluster once, as tasks returning them rather than scattered data:
    # a task's result that dies with its worker is computed again, scattered data is lost for good.
    # Keys of their own per batch: a batch never depends on a copy an earlier batch is releasing.
    shared = [
        client.submit(_shared, a, key=f"shared-{batch}-{j}", retries=retries, pure=False) if _large(a) else a
        for j, a in enumerate(args)
    ]
    futures = [
        client.submit(task, item, *shared, key=f"{task.__name__}-{batch}-{i}", retries=retries, pure=False)
        for i, item in enumerate(items)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    try:
        for done, future in enumerate(distributed.as_completed(futures, loop=client.loop), start=1):
            i = index[future.key]
            try:
                result = future.result()
            except Exception as exc:
                raise ScaleOutError(
                    f"{what} {i + 1} of {len(items)} failed (after {retries} retries): {type(exc).__name__}: {exc}"
                ) from exc
            future.release()  # the worker may drop it: a large result is held here only
            results[i] = consume(result) if consume is not None else result
            if progress is not None:
                progress(done, len(items))
    finally:
        client.cancel(futures + [a for a in shared if isinstance(a, distributed.Future)])
    return results


def _shared(value: T) -> T:
    """A task whose result is ``value``: how a shared argument reaches the workers."""
    return value


def _large(value: Any) -> bool:
    """Arguments worth sending to every worker once rather than with each task."""
    return not isinstance(value, str | int | float | bool | type(None))
