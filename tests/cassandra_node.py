"""Finding the Cassandra node the tests use (started by ``scripts/cassandra-node start``).

Locally, without a node, Cassandra tests skip with a message that says how to enable them.
With ``ES_REQUIRE_CASSANDRA=1`` (as ``.ci/run`` sets) a missing node fails the run instead.
"""

from __future__ import annotations

import functools
import os
import socket

import pytest

HOW_TO_ENABLE = (
    "no Cassandra node on {host}:{port}; start one with `scripts/cassandra-node start` "
    "(needs Java 17 and Maven) or set ES_CASSANDRA_HOST/ES_CASSANDRA_PORT"
)


def node_address() -> tuple[str, int]:
    return os.environ.get("ES_CASSANDRA_HOST", "127.0.0.1"), int(os.environ.get("ES_CASSANDRA_PORT", "9042"))


def node_answers(timeout: float = 1.0) -> bool:
    host, port = node_address()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cassandra_url_or_skip(keyspace: str, **options: str) -> str:
    host, port = node_address()
    if not node_answers():
        message = HOW_TO_ENABLE.format(host=host, port=port)
        if os.environ.get("ES_REQUIRE_CASSANDRA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    query = "&".join(f"{k}={v}" for k, v in {"replication_factor": "1", **options}.items())
    url = f"cassandra://{host}:{port}/{keyspace}?{query}"
    _upgraded(url)
    return url


@functools.cache
def _upgraded(url: str) -> None:
    """Test keyspaces outlive a run: one left by an earlier version in the first feed layout is
    upgraded in place once (a no-op otherwise), as an operator would."""
    from es_core.stores.cassandra import CassandraStore

    CassandraStore.upgrade(url)
