"""The 3-node Cassandra cluster that every cluster scenario shares: started once per run by
``scripts/cassandra-node`` (each node a JVM of its own, on loopback addresses), stopped at the end.

The nodes live in their own scratch directory (``--cluster-home``, default
``<repo>/.cassandra/reliability``) under their own cluster name, on 127.0.0.1-3, or on
127.0.0.11-13 when another node already holds 127.0.0.1 (``ES_RELIABILITY_CLUSTER_ADDRESSES``
chooses). Every node this module starts, it stops; the scratch directory is deleted if the run
created it. ``python -m reliability cluster start|stop|status`` runs the same cluster by hand
(for ``python -m benchmarks cassandra --cluster``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "cassandra-node"
CLUSTER_NAME = os.environ.get("ES_RELIABILITY_CLUSTER_NAME", "es-reliability")
DEFAULT_HOME = ROOT / ".cassandra" / "reliability"
TOKENS_PER_NODE = 4


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def cluster_addresses() -> list[str]:
    chosen = os.environ.get("ES_RELIABILITY_CLUSTER_ADDRESSES", "")
    if chosen:
        return [a.strip() for a in chosen.split(",") if a.strip()]
    if port_open("127.0.0.1", 9042) or port_open("127.0.0.1", 7000):
        return ["127.0.0.11", "127.0.0.12", "127.0.0.13"]  # 127.0.0.1 belongs to someone else's node
    return ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


ADDRESSES_FILE = "addresses"  # in the cluster's home: the addresses its nodes were started on


def addresses_of(home: Path) -> list[str]:
    """The addresses of the cluster started in ``home`` (recorded by ``start_all``), else the ones
    a new cluster would take. Recorded, because a cluster's own node on 127.0.0.1 makes
    ``cluster_addresses()`` choose other addresses: stop and status must find the running nodes."""
    recorded = home / ADDRESSES_FILE
    if not os.environ.get("ES_RELIABILITY_CLUSTER_ADDRESSES") and recorded.is_file():
        return [a for a in recorded.read_text().split() if a]
    return cluster_addresses()


@dataclass
class Cluster:
    """Three nodes run by ``scripts/cassandra-node`` in one scratch directory of their own."""

    home: Path
    addresses: list[str]
    heap: str = field(default_factory=lambda: os.environ.get("ES_RELIABILITY_CLUSTER_HEAP", "768m"))
    started: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)

    def index(self, address: str) -> str:
        return address.rsplit(".", 1)[1]

    def _env(self, address: str | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "ES_CASSANDRA_HEAP": self.heap,
            "ES_CASSANDRA_CLUSTER_NAME": CLUSTER_NAME,
            "PARALLEL": "1",
        }
        if address is not None:
            # a longer gossip settle than the script's 1 s default: a joining node must reach the
            # seed within it, and a loaded CI machine missed that once
            env.setdefault("ES_CASSANDRA_RING_DELAY_MS", "5000")
            env["ES_CASSANDRA_NUM_TOKENS"] = str(TOKENS_PER_NODE)
            env["ES_CASSANDRA_INITIAL_TOKEN"] = self.tokens(address)
        return env

    def tokens(self, address: str) -> str:
        """This node's share of evenly spaced Murmur3 tokens, interleaved with the others'.
        Chosen here rather than by Cassandra's allocator: a node that starts while gossip
        still shows the previous one bootstrapping computes the same tokens from the same ring
        and fails with "Bootstrap Token collision" (seen in CI)."""
        nodes, i = len(self.addresses), self.addresses.index(address)
        step = 2**64 // (nodes * TOKENS_PER_NODE)
        # offset by half a step: the partitioner's minimum token (-2**63) is never a node's
        return ",".join(str(-(2**63) + step // 2 + (i + nodes * j) * step) for j in range(TOKENS_PER_NODE))

    def _args(self, command: str, address: str, timeout: int = 240) -> list[str]:
        return [
            str(SCRIPT),
            command,
            "--home",
            str(self.home),
            "--node",
            self.index(address),
            "--address",
            address,
            "--seeds",
            self.addresses[0],
            "--cluster-name",
            CLUSTER_NAME,
            "--timeout",
            str(timeout),
        ]

    def start(self, address: str) -> float:
        begin = time.monotonic()
        self.started.add(address)  # before: a start that fails half-way is still ours to stop
        for attempt in (1, 2):
            done = subprocess.run(
                self._args("start", address), env=self._env(address), capture_output=True, text=True, timeout=300
            )
            if done.returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"node {address} did not start: {done.stderr[-1500:]}")
            # A first start that failed to join (seen in CI under load: no seed contact within the
            # ring delay) leaves a half-bootstrapped node: wipe it and join once more.
            self.log.append(f"start {address} failed, retrying on a clean node: {done.stderr[-300:]!r}")
            subprocess.run(self._args("clean", address), env=self._env(), capture_output=True, timeout=120)
        seconds = time.monotonic() - begin
        self.log.append(f"start {address}: {seconds:.0f}s")
        return seconds

    def start_later(self, address: str) -> subprocess.Popen[str]:
        self.started.add(address)
        return subprocess.Popen(
            self._args("start", address),
            env=self._env(address),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish_start(self, process: subprocess.Popen[str], address: str, *, grace: int = 300) -> float:
        """Wait for a start begun with ``start_later``; a start that outlived the script's own
        timeout (a loaded machine) gets ``grace`` more seconds to answer CQL before it counts as
        failed. Returns the seconds waited."""
        begin = time.monotonic()
        _, err = process.communicate(timeout=grace + 300)
        if process.returncode != 0:
            self.log.append(f"start {address} not ready in time, waiting {grace}s more: {err[-300:]!r}")
            self.wait(address, grace, f"node {address} did not come back: {err[-700:]}")
        return time.monotonic() - begin

    def wait_all(self, grace: int = 300) -> None:
        """Every node answers CQL (within ``grace`` seconds each), or RuntimeError."""
        for address in self.addresses:
            if not port_open(address, 9042):
                self.wait(address, grace, f"node {address} is not answering")

    def wait(self, address: str, grace: int, failure: str) -> None:
        """``scripts/cassandra-node wait``: the node answers CQL within ``grace`` seconds, or
        RuntimeError(``failure`` and the script's complaint)."""
        done = subprocess.run(
            self._args("wait", address, timeout=grace), env=self._env(), capture_output=True, text=True,
            timeout=grace + 60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{failure}: {done.stderr[-800:]}")

    def pid(self, address: str) -> int:
        return int((self.home / f"node{self.index(address)}" / "cassandra.pid").read_text().strip())

    def kill9(self, address: str) -> None:
        os.kill(self.pid(address), signal.SIGKILL)
        self.log.append(f"SIGKILL {address}")

    def pause(self, address: str) -> None:
        """SIGSTOP the node's JVM: it keeps its sockets but answers nothing, as in a long GC pause."""
        os.kill(self.pid(address), signal.SIGSTOP)
        self.paused.add(address)
        self.log.append(f"SIGSTOP {address}")

    def resume(self, address: str) -> None:
        os.kill(self.pid(address), signal.SIGCONT)
        self.paused.discard(address)
        self.log.append(f"SIGCONT {address}")

    def resume_all(self) -> None:
        """SIGCONT every node this object paused (a node is never left stopped)."""
        for address in sorted(self.paused):
            try:
                self.resume(address)
            except (OSError, ValueError):
                self.paused.discard(address)  # it died meanwhile: nothing to resume

    def stop(self, address: str) -> None:
        subprocess.run(self._args("stop", address), env=self._env(), capture_output=True, timeout=120)

    def nodetool(self, address: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._args("nodetool", address), "--", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def rss_mib(self) -> dict[str, int]:
        out = {}
        for address in self.addresses:
            try:
                status = Path(f"/proc/{self.pid(address)}/status").read_text()
            except (OSError, ValueError):
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    out[address] = int(line.split()[1]) // 1024
        return out

    def stop_all(self) -> None:
        """Stop every node this object started (and only those), in parallel."""
        self.resume_all()  # a stopped JVM would not answer SIGTERM until the stop timeout
        threads = [threading.Thread(target=self.stop, args=(a,)) for a in sorted(self.started)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=150)
        self.started.clear()


def cluster_url(cluster: Cluster, keyspace: str, **options: object) -> str:
    """A store URL for ``keyspace`` on every node of the cluster, replication factor 3, QUORUM
    reads and writes and SERIAL Paxos (one data centre, so these equal the LOCAL_ defaults)."""
    query = {"replication_factor": 3, "consistency": "QUORUM", "serial_consistency": "SERIAL", **options}
    text = "&".join(f"{k}={v}" for k, v in query.items())
    return f"cassandra://{','.join(cluster.addresses)}:9042/{keyspace}?{text}"


def start_all(cluster: Cluster) -> dict[str, object]:
    """Start every node, one after the other (a joining node needs the previous one up), and
    check that the ring has three nodes up and normal; returns the start figures."""
    begin = time.monotonic()
    for address in cluster.addresses:
        if port_open(address, 9042):
            raise RuntimeError(f"{address}:9042 is already in use; set ES_RELIABILITY_CLUSTER_ADDRESSES")
    cluster.home.mkdir(parents=True, exist_ok=True)
    (cluster.home / ADDRESSES_FILE).write_text("\n".join(cluster.addresses) + "\n")
    starts = [cluster.start(a) for a in cluster.addresses]
    status = cluster.nodetool(cluster.addresses[0], "status").stdout
    up = sum(1 for line in status.splitlines() if line.startswith("UN"))
    if up != len(cluster.addresses):
        raise RuntimeError(f"the cluster has {up} nodes up and normal, not {len(cluster.addresses)}:\n{status}")
    return {
        "addresses": cluster.addresses,
        "heap": cluster.heap,
        "node_start_seconds": [round(s) for s in starts],
        "cluster_ready_seconds": round(time.monotonic() - begin),
    }


@contextmanager
def running_cluster(home: Path | None = None, *, keep: bool = False) -> Iterator[Cluster]:
    """A started cluster for the block; afterwards every node it started is stopped and a scratch
    directory this run created is deleted (unless ``keep``). ``cluster.figures`` holds the start
    figures; a cluster that failed to start raises (after stopping what did start)."""
    home = home or DEFAULT_HOME
    fresh = not home.exists()
    cluster = Cluster(home, cluster_addresses())
    try:
        cluster.figures = start_all(cluster)
        yield cluster
    finally:
        cluster.stop_all()
        if fresh and not keep:
            shutil.rmtree(home, ignore_errors=True)
