"""Finding the Cassandra node the tests use (started by ``scripts/cassandra-node start``).

Locally, without a node, Cassandra tests skip with a message that says how to enable them.
With ``ES_REQUIRE_CASSANDRA=1`` (as ``.ci/run`` sets) a missing node fails the run instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HOW_TO_ENABLE = (
    "no Cassandra node on {host}:{port}; start one with `scripts/cassandra-node start` "
    "(needs Java 17 and Maven) or set ES_CASSANDRA_HOST/ES_CASSANDRA_PORT"
)


def node_address() -> tuple[str, int]:
    return os.environ.get("ES_CASSANDRA_HOST", "127.0.0.1"), int(os.environ.get("ES_CASSANDRA_PORT", "9042"))


def node_answers(timeout: float = 1.0) -> bool:
    return answers(*node_address(), timeout=timeout)


def answers(host: str, port: int = 9042, *, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cassandra_url_or_skip(keyspace: str, **options: str) -> str:
    host, port = node_address()
    if not node_answers():
        skip_or_fail(HOW_TO_ENABLE.format(host=host, port=port))
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


# -- nodes a test module starts for itself (authentication, TLS) -------------------------------

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "cassandra-node"


@dataclass(frozen=True)
class ScriptedNode:
    """A node started by ``scripts/cassandra-node`` with extra flags (``--auth``, ``--tls``)."""

    name: str
    node: int
    flags: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"127.0.0.{self.node}"

    @property
    def home(self) -> Path:
        return REPO / ".cassandra" / self.name  # ignored by git, like the main node's home

    @property
    def ca_file(self) -> Path:
        """The node's self-signed certificate (``--tls``): what a client trusts."""
        return self.home / f"node{self.node}" / "tls" / "node.pem"

    def args(self, command: str) -> list[str]:
        return [str(SCRIPT), command, "--node", str(self.node), "--home", str(self.home)]


def scripted_node(name: str, default_node: int, *flags: str) -> ScriptedNode:
    """The node for ``name``: number ``ES_CASSANDRA_<NAME>_NODE`` (default ``default_node``), so
    address ``127.0.0.<number>``. Chosen clear of the main node (127.0.0.1) and the reliability
    cluster (127.0.0.1-3, 127.0.0.11-13)."""
    return ScriptedNode(name, int(os.environ.get(f"ES_CASSANDRA_{name.upper()}_NODE", default_node)), flags)


@contextmanager
def running(*nodes: ScriptedNode, timeout: float = 600) -> Iterator[None]:
    """Start the nodes (all at once: a JVM start is mostly waiting), yield, stop what was started.
    A node already answering at its address is used as it is and left running. Without Java the
    tests skip, or fail with ``ES_REQUIRE_CASSANDRA=1``."""
    wanted = [n for n in nodes if not answers(n.address)]
    if wanted and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        skip_or_fail("Java 17 is needed to start the Cassandra nodes of these tests")
    env = {**os.environ, "ES_CASSANDRA_HEAP": os.environ.get("ES_CASSANDRA_HEAP", "512m")}
    launched = {
        n: subprocess.Popen(
            [*n.args("start"), "--address", n.address, "--seeds", n.address, "--cluster-name", f"es-{n.name}",
             "--timeout", str(int(timeout) - 60), *n.flags],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for n in wanted
    }  # fmt: skip
    try:
        failed = []
        for node, process in launched.items():
            output, _ = process.communicate(timeout=timeout)
            if process.returncode != 0:
                failed.append(f"{node.name} node on {node.address} did not start:\n{output[-3000:]}")
        if failed:
            skip_or_fail("\n".join(failed))
        yield
    finally:
        for node in launched:
            subprocess.run(node.args("stop"), capture_output=True, timeout=120, check=False)


def skip_or_fail(message: str) -> None:
    """Skip the test, or fail it where Cassandra is required (``ES_REQUIRE_CASSANDRA=1``, as in CI)."""
    if os.environ.get("ES_REQUIRE_CASSANDRA") == "1":
        pytest.fail(message)
    pytest.skip(message)
