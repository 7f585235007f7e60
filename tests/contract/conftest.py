"""The one contract suite: every test here runs against every backend.

A backend joins by adding a factory to ``STORE_FACTORIES``; the Cassandra factory skips (locally)
or fails (in CI, where ``ES_REQUIRE_CASSANDRA=1``) when no node answers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from es_core import EventStore, open_store

StoreFactory = Callable[[], EventStore]


def _memory(tmp_path: Path) -> StoreFactory:
    store = open_store("memory://")
    return lambda: store  # one object: "reopening" a memory store is the same store


def _sqlite(tmp_path: Path) -> StoreFactory:
    url = f"sqlite:///{tmp_path}/events.db"
    return lambda: open_store(url)


def _cassandra(tmp_path: Path) -> StoreFactory:
    from tests.cassandra_node import cassandra_url_or_skip

    # one keyspace for the run (schema changes are slow on Cassandra); tests use unique stream ids
    url = cassandra_url_or_skip(keyspace="es_contract")
    return lambda: open_store(url)


STORE_FACTORIES: dict[str, Callable[[Path], StoreFactory]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "cassandra": _cassandra,
}


@pytest.fixture(params=sorted(STORE_FACTORIES), ids=str)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "cassandra":
        request.applymarker(pytest.mark.cassandra)
    return str(request.param)


@pytest.fixture
def reopen(backend: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory that opens (or reopens) the same store; every store opened is closed after."""
    factory = STORE_FACTORIES[backend](tmp_path)
    opened: list[EventStore] = []

    def open_again() -> EventStore:
        store = factory()
        opened.append(store)
        return store

    yield open_again
    for store in opened:
        store.close()


@pytest.fixture
def store(reopen: StoreFactory) -> EventStore:
    return reopen()


@pytest.fixture
def sid() -> Callable[[str], str]:
    """Unique stream ids, so tests never see each other's streams on a shared backend."""
    prefix = uuid.uuid4().hex[:10]
    return lambda name="s": f"{name}-{prefix}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ES_SKIP_CASSANDRA") == "1":
        skip = pytest.mark.skip(reason="ES_SKIP_CASSANDRA=1")
        for item in items:
            if "[cassandra" in item.nodeid:
                item.add_marker(skip)
