"""Racing writers: exactly one writer wins each version; nothing is lost or duplicated."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

from es_core import ConcurrencyError, EventStore, NewEvent, StoreUnavailableError, open_store

Sid = Callable[..., str]
WRITERS = 4
APPENDS_EACH = 15


def _race(store: EventStore, stream_id: str, writer: int) -> list[int]:
    """Read the version, append one event expecting it; on conflict, re-read and try again."""
    won: list[int] = []
    while len(won) < APPENDS_EACH:
        version = store.stream_version(stream_id)
        try:
            result = store.append(stream_id, [NewEvent(event_type="Tick", data={"w": writer, "i": len(won)})], version)
        except (ConcurrencyError, StoreUnavailableError):
            continue
        won.append(result.last_version)
    return won


def _check(store: EventStore, stream_id: str, won: list[list[int]]) -> None:
    events = store.read_stream(stream_id)
    total = WRITERS * APPENDS_EACH
    assert [e.version for e in events] == list(range(1, total + 1))
    claimed = sorted(v for w in won for v in w)
    assert claimed == list(range(1, total + 1)), "a version was won twice or lost"
    for writer in range(WRITERS):  # every writer's own events, each once, in its order
        mine = [e.data["i"] for e in events if e.data["w"] == writer]
        assert mine == list(range(APPENDS_EACH))


def test_racing_threads_on_one_stream(store: EventStore, sid: Sid) -> None:
    s = sid()
    won: list[list[int]] = [[] for _ in range(WRITERS)]

    def run(w: int) -> None:
        won[w] = _race(store, s, w)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    _check(store, s, won)


def _process_writer(url: str, stream_id: str, writer: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with open_store(url) as store:
        out.put((writer, _race(store, stream_id, writer)))


@pytest.mark.parametrize("backend", ["sqlite", "cassandra"], indirect=True)
def test_racing_processes_on_one_stream(backend: str, reopen: Callable[[], EventStore], sid: Sid) -> None:
    store = reopen()
    url = _url_of(store)
    s = sid()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(url, s, w, out)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    _check(store, s, [results[w] for w in range(WRITERS)])


def _url_of(store: EventStore) -> str:
    assert store.url and store.url != "memory://", f"{store!r} cannot be shared across processes"
    return store.url
