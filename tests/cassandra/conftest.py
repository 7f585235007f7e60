"""Fixtures for the Cassandra backend's own tests (the contract suite runs it too).

Each module skips itself when the driver (an optional extra) is missing. Tests that need a
node use ``tests.cassandra_node``: they skip without one, or fail when
``ES_REQUIRE_CASSANDRA=1``. Keyspaces outlive a run (schema changes are slow); every test
uses stream ids of its own, so runs, and tests, never see each other's streams.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from es_core import open_store
from tests.cassandra_node import cassandra_url_or_skip

LAYOUT_WIDTH = 10  # tiny buckets, so a few appends cross several partition boundaries


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ES_SKIP_CASSANDRA") == "1":
        skip = pytest.mark.skip(reason="ES_SKIP_CASSANDRA=1")
        for item in items:
            if item.get_closest_marker("cassandra"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def layout_url() -> str:
    return cassandra_url_or_skip("es_test_layout", bucket_width=str(LAYOUT_WIDTH))


@pytest.fixture(scope="session")
def feed_url() -> str:
    return cassandra_url_or_skip("es_test_feed")


@pytest.fixture(scope="module")
def layout(layout_url: str) -> Iterator[Any]:
    store = open_store(layout_url)
    yield store
    store.close()


@pytest.fixture(scope="module")
def feed_store(feed_url: str) -> Iterator[Any]:
    store = open_store(feed_url)
    yield store
    store.close()


@pytest.fixture
def sid() -> Callable[..., str]:
    prefix = uuid.uuid4().hex[:10]
    return lambda name="s": f"{name}-{prefix}"
