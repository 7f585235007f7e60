"""Faults on a real local cluster: a worker killed mid-task, a split whose store read fails
(always, or once), a scheduler that does not answer. The answer is the serial one, or a clear
error naming what failed: never a partial report.

Faults are injected into the worker processes themselves (``client.run``), and undone after."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from downloads import load_rules, scaleout, whatif
from downloads.errors import ScaleOutError
from es_core import EventStore, StoreUnavailableError
from es_core.stores.sqlite import SQLiteStore

from .conftest import STRICT_RULES, WORKERS_START, report_fields

_REAL_READ = SQLiteStore._read_split
_failed: set[int] = set()


def _slow_reads(seconds: float) -> None:
    """On a worker: every split read first waits, so tasks are surely running when a worker dies."""

    def slow(self: SQLiteStore, split: Any, page_size: int) -> Any:
        time.sleep(seconds)
        return _REAL_READ(self, split, page_size)

    SQLiteStore._read_split = slow  # type: ignore[method-assign]


def _failing_reads(index: int, once: bool) -> None:
    """On a worker: reading split ``index`` raises, every time or the first time in this process."""
    _failed.clear()

    def failing(self: SQLiteStore, split: Any, page_size: int) -> Any:
        if split.index == index and not (once and index in _failed):
            _failed.add(index)
            raise StoreUnavailableError(f"injected: split {index} cannot be read")
        return _REAL_READ(self, split, page_size)

    SQLiteStore._read_split = failing  # type: ignore[method-assign]


def _fired() -> bool:
    return bool(_failed)


def _heal() -> None:
    SQLiteStore._read_split = _REAL_READ  # type: ignore[method-assign]


@pytest.fixture
def healed(client: Any) -> Iterator[Any]:
    yield client
    client.wait_for_workers(2, timeout=WORKERS_START)
    client.run(_heal)


def serial_report(store: EventStore) -> dict[str, Any]:
    return report_fields(whatif(store, load_rules(STRICT_RULES), max_changes=50))


def test_a_worker_killed_mid_task_changes_nothing(history: EventStore, healed: Any) -> None:
    client = healed
    client.run(_slow_reads, 1.0)
    before = client.run(os.getpid)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            rules = load_rules(STRICT_RULES)
            result["report"] = scaleout.whatif(history, rules, client=client, max_changes=50, splits=8)
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    busy: list[str] = []
    while not busy and time.monotonic() < deadline:
        busy = [address for address, tasks in client.processing().items() if tasks]
        time.sleep(0.05)
    assert busy, "no task started"
    os.kill(before[busy[0]], signal.SIGKILL)
    worker.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert report_fields(result["report"]) == serial_report(history)
    client.wait_for_workers(2, timeout=WORKERS_START)
    assert before[busy[0]] not in client.run(os.getpid).values()  # it really died (and was replaced)


def test_a_split_that_cannot_be_read_is_an_error_not_a_partial_answer(history: EventStore, healed: Any) -> None:
    healed.run(_failing_reads, 1, False)
    with pytest.raises(ScaleOutError, match=r"split 2 of 4 failed \(after 1 retries\): StoreUnavailableError"):
        scaleout.whatif(history, load_rules(STRICT_RULES), client=healed, splits=4, retries=1)


def test_a_read_that_fails_once_is_retried_to_the_right_answer(history: EventStore, healed: Any) -> None:
    healed.run(_failing_reads, 2, True)  # fails once in each worker process: two retries suffice
    report = scaleout.whatif(history, load_rules(STRICT_RULES), client=healed, max_changes=50, splits=4, retries=2)
    assert report_fields(report) == serial_report(history)
    assert any(healed.run(_fired).values())  # the fault did fire


def test_a_scheduler_that_does_not_answer_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(ScaleOutError, match=f"no Dask scheduler answers at tcp://127.0.0.1:{port}"):
        with scaleout.connect(scheduler=f"tcp://127.0.0.1:{port}", timeout=2):
            pass
    assert time.monotonic() - started < 60
