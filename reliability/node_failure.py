"""A Cassandra node failure: on the shared 3-node cluster (``reliability.cluster``), keyspace at
replication factor 3, QUORUM writes; one node is SIGKILLed in the middle of a stream of commands
and restarted while the stream goes on. Opt-in (``--scenarios cassandra-failure`` or
``ES_RELIABILITY_CLUSTER=1``): three JVMs need 2-4 GiB and a few minutes (figures in
``docs/reliability.md``). It runs after the other cluster scenarios: its last read stops two of
the three nodes.

Checks: appends continue while the node is down (commands that fail with a store error are
retried with the same request id, so none is applied twice); every acknowledged event reads
back at QUORUM while the node is down, at QUORUM and ALL after it returns and a repair, and
finally from the restarted node alone (the two others stopped, reads at ONE): it holds every
event too. Plus the same per-member checks as the races.

When ``es_core.stores.cassandra`` is not installed, the cluster part is still exercised with the
raw driver (conditional inserts at QUORUM into a probe table), and the result says so.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .cluster import Cluster
from .report import ScenarioResult, timed

KEYSPACE = "es_node_failure"
TIME_LIMIT = 1200.0  # seconds for the whole scenario
CLIENTS = 4  # threads streaming commands at once, each like a server of its own


# -- the workload ------------------------------------------------------------------------------


@dataclass
class Stream:
    """The command stream and what it was told, shared with the thread that kills the node."""

    errors_retried: int = 0
    given_up: int = 0
    sent: int = 0
    down_from: int | None = None
    back_at: int | None = None
    rss_before_kill: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _submit(service: Any, command: Any, stream: Stream, deadline: float) -> Any:
    """Send until answered; store errors (the node just died, a timeout) are retried with the
    same request id, so an attempt that landed is recognised, not applied twice."""
    from downloads import CommandRefusedError, InvalidCommandError, RequestForgottenError
    from es_core import ConcurrencyError, StoreError

    from .workload import Ack

    for attempt in range(1, 40):
        try:
            return Ack.of(command, service.handle(command), attempt)
        except (CommandRefusedError, InvalidCommandError, RequestForgottenError) as exc:
            # a retry of a request that landed long ago is answered with its error, as `send` does
            return Ack.refused(command, exc, attempt)
        except (StoreError, ConcurrencyError):
            with stream.lock:
                stream.errors_retried += 1
            if time.monotonic() > deadline:
                break
            time.sleep(min(0.05 * attempt, 1.0))
    with stream.lock:
        stream.given_up += 1
    return None


def run_node_failure(
    workdir: Path, *, seed: int, cluster: Cluster, commands: int = 600, members: int = 12
) -> ScenarioResult:
    """On ``cluster`` (started, all nodes up); leaves two of its nodes stopped (the last read)."""
    result = ScenarioResult("cassandra-failure", "cassandra", fault_kind="node kills", ack_kind="commands")
    with timed(result):
        cluster.wait_all()  # a node an earlier scenario restarted may still be starting
        try:
            import es_core.stores.cassandra  # noqa: F401
        except ImportError as exc:
            result.figures["backend"] = f"es_core.stores.cassandra missing ({exc}); cluster checked with the raw driver"
            _raw_probe(result, cluster, seed, commands)
        else:
            _with_store(result, cluster, seed, commands, members)
        result.figures["rss_mib_at_end"] = cluster.rss_mib()
    result.figures["cluster_log"] = list(cluster.log)
    return result


def _schedule(cluster: Cluster, stream: Stream, victim: str, commands: int) -> Callable[[int], None]:
    """Kill the victim a third of the way in; restart it (in the background) at two thirds."""
    restart: list[subprocess.Popen[str]] = []

    def at(n: int) -> None:
        if n == commands // 3:
            stream.rss_before_kill = cluster.rss_mib()
            cluster.kill9(victim)
            stream.down_from = n
        elif n == 2 * commands // 3:
            restart.append(cluster.start_later(victim))
            stream.back_at = n

    at.restart = restart  # type: ignore[attr-defined]
    return at


def _finish_restart(cluster: Cluster, schedule: Callable[[int], None], result: ScenarioResult) -> None:
    for process in schedule.restart:  # type: ignore[attr-defined]
        waited = cluster.finish_start(process, cluster.addresses[2])
        result.figures["restart_wait_after_stream_seconds"] = round(waited)


def _with_store(result: ScenarioResult, cluster: Cluster, seed: int, commands: int, n_members: int) -> None:
    from es_core import open_store

    from .workload import BASE_TIME, MemberView, learn, next_command, service_for, subscribe_all, verify_members, world

    rules, catalogue = world()
    victim = cluster.addresses[2]
    hosts = ",".join(cluster.addresses)
    url = f"cassandra://{hosts}:9042/{KEYSPACE}?replication_factor=3&consistency=QUORUM&serial_consistency=SERIAL"
    tag = f"nf{seed}-{uuid.uuid4().hex[:6]}"
    members = [f"{tag}-m{k}" for k in range(n_members)]
    stream = Stream()
    deadline = time.monotonic() + TIME_LIMIT
    lock = threading.Lock()
    counter = iter(range(10**9))
    with open_store(url) as store:
        acks = subscribe_all(service_for(store, rules, catalogue), members, tag)
        schedule = _schedule(cluster, stream, victim, commands)

        def client(k: int) -> None:
            """One of several servers, each with its own service and members, all streaming at once,
            so requests are in flight when the node dies."""
            service = service_for(store, rules, catalogue)
            rng = random.Random(f"{seed}:node-failure:{k}")
            mine = members[k::CLIENTS]
            views = {m: MemberView() for m in mine}
            for i in range(commands // CLIENTS):
                with lock:
                    n = next(counter)
                schedule(n)
                if n == 2 * commands // 3 - 1:
                    # the node is down: every event acknowledged so far must read back at QUORUM already
                    with lock:
                        so_far = list(acks)
                    _read_back(result, store, members, so_far, "QUORUM with a node down")
                member = rng.choice(mine)
                at = BASE_TIME + timedelta(minutes=i)
                command = next_command(rng, member, f"{tag}-k{k}-c{i}", at, views[member])
                ack = _submit(service, command, stream, deadline)
                with lock:
                    stream.sent += 1
                    if ack is not None:
                        acks.append(ack)
                if ack is not None:
                    learn(views[member], command, ack)

        begin = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=TIME_LIMIT)
        result.figures["stream_seconds"] = round(time.monotonic() - begin, 1)
        _finish_restart(cluster, schedule, result)
        result.faults += 1
        result.acknowledged = sum(1 for x in acks if x.answered)
        verify_members(store, members, acks, rules, catalogue, result)
    begin = time.monotonic()
    repair = cluster.nodetool(victim, "repair", "--full", KEYSPACE)
    result.figures["repair_seconds"] = round(time.monotonic() - begin)
    if repair.returncode != 0:
        result.figures["repair_error"] = repair.stderr[-800:]
    for level in ("QUORUM", "ALL"):
        with open_store(url.replace("consistency=QUORUM", f"consistency={level}")) as store:
            _read_back(result, store, members, acks, f"{level} after the node returned")
    # the returned node alone: the two others stopped, reads at ONE can only come from it
    for other in cluster.addresses[:2]:
        cluster.stop(other)
    with _NodeAlone(victim) as alone:
        _read_back(result, alone, members, acks, "ONE from the returned node alone")
    result.figures.update(
        {
            "commands_sent": stream.sent,
            "store_errors_retried": stream.errors_retried,
            "given_up": stream.given_up,
            "node_down_during_commands": f"{stream.down_from}..{stream.back_at} (then restarting)",
            "rss_mib_before_kill": stream.rss_before_kill,
        }
    )
    if stream.given_up:
        result.problem("violation", f"{stream.given_up} commands got no answer within the retries")
    result.summary = (
        f"node {victim} SIGKILLed after {stream.down_from} of {stream.sent} commands, restarted at {stream.back_at}; "
        f"{result.acknowledged} commands acknowledged, {stream.errors_retried} store errors retried; every event "
        "read back at QUORUM (node down), QUORUM and ALL (node back, repaired) and from the returned node alone"
        if not (result.lost or result.duplicates or result.violations)
        else "see problems below"
    )


def _read_back(result: ScenarioResult, store: Any, members: list[str], acks: list[Any], how: str) -> None:
    """Every event an acknowledgement promised is there, read at the store's consistency."""
    expected: dict[str, int] = {}
    for ack in acks:
        if ack.answered and not ack.duplicate and ack.events:
            expected[ack.request_id] = expected.get(ack.request_id, 0) + ack.events
    stored: dict[str, int] = {}
    for member in members:
        for record in store.read_stream(f"member-{member}"):
            rid = record.metadata.get("request_id", "")
            stored[rid] = stored.get(rid, 0) + 1
    for rid, n in expected.items():
        if stored.get(rid, 0) < n:
            result.problem("lost", f"read at {how}: request {rid} has {stored.get(rid, 0)} of {n} events")
    result.figures.setdefault("read_back", {})[how] = sum(stored.values())


class _NodeAlone:
    """One node's replica of the events, read with the raw driver at ONE. The store refuses ONE
    (its feed and retry lookups need quorums); a read-back of streams needs neither."""

    def __init__(self, address: str) -> None:
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
        from cassandra.cluster import Cluster as Driver
        from cassandra.policies import WhiteListRoundRobinPolicy

        profile = ExecutionProfile(
            load_balancing_policy=WhiteListRoundRobinPolicy([address]),
            consistency_level=ConsistencyLevel.ONE,
            request_timeout=20,
        )
        self.cluster = Driver([address], execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=10)
        self.session = self.cluster.connect()
        width = self.session.execute(f"SELECT value FROM {KEYSPACE}.store_settings WHERE name = 'bucket_width'").one()
        self.width = int(width.value)

    def read_stream(self, stream_id: str) -> list[Any]:
        """The stream's rows, following its partitions as the store does (a partition's head
        names the bucket of the next append)."""
        records: list[Any] = []
        bucket = 0
        while True:
            rows = list(self.session.execute(
                f"SELECT version, metadata, head FROM {KEYSPACE}.events WHERE stream_id = %s AND bucket = %s",
                (stream_id, bucket),
            ))  # fmt: skip
            records += [_Row(json.loads(r.metadata)) for r in rows if r.version is not None]
            if not rows or rows[0].head is None or rows[0].head // self.width <= bucket:
                return records
            bucket = rows[0].head // self.width

    def __enter__(self) -> _NodeAlone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.shutdown()


@dataclass
class _Row:
    metadata: dict[str, Any]


# -- the raw-driver probe, for when the es_core backend is missing -------------------------------


def _raw_probe(result: ScenarioResult, cluster: Cluster, seed: int, writes: int) -> None:
    """Conditional inserts at QUORUM (serial consistency SERIAL) into a probe table while a node
    is killed and restarted; then every acknowledged row read back as ``_with_store`` does."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.cluster import Cluster as Driver
    from cassandra.policies import WhiteListRoundRobinPolicy

    victim = cluster.addresses[2]
    profile = ExecutionProfile(
        consistency_level=ConsistencyLevel.QUORUM, serial_consistency_level=ConsistencyLevel.SERIAL, request_timeout=10
    )
    driver = Driver(cluster.addresses, port=9042, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = driver.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 3}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.probe (stream text, version int, payload text, "
        "PRIMARY KEY (stream, version))"
    )
    insert = session.prepare(f"INSERT INTO {KEYSPACE}.probe (stream, version, payload) VALUES (?, ?, ?) IF NOT EXISTS")
    rng = random.Random(f"{seed}:raw-probe")
    tag = uuid.uuid4().hex[:8]
    streams = [f"{tag}-s{k}" for k in range(10)]
    versions = dict.fromkeys(streams, 0)
    acked: dict[tuple[str, int], str] = {}
    stream = Stream()
    schedule = _schedule(cluster, stream, victim, writes)
    begin = time.monotonic()
    for n in range(writes):
        schedule(n)
        s = rng.choice(streams)
        payload = f"{n}"
        for attempt in range(40):
            try:
                done = session.execute(insert, (s, versions[s] + 1, payload))
            except Exception:  # driver errors while the node dies: retried, the condition makes it safe
                stream.errors_retried += 1
                time.sleep(min(0.05 * (attempt + 1), 1.0))
                continue
            if done.was_applied or getattr(done.one(), "payload", None) == payload:  # ours, perhaps from before
                versions[s] += 1
                acked[(s, versions[s])] = payload
                break
            versions[s] += 1  # someone else's row: cannot happen with one writer, but stay correct
        else:
            stream.given_up += 1
        stream.sent += 1
    result.figures["stream_seconds"] = round(time.monotonic() - begin, 1)
    _finish_restart(cluster, schedule, result)
    driver.shutdown()
    result.faults += 1
    result.acknowledged = len(acked)
    begin = time.monotonic()
    repair = cluster.nodetool(victim, "repair", "--full", KEYSPACE)
    result.figures["repair_seconds"] = round(time.monotonic() - begin)
    if repair.returncode != 0:
        result.figures["repair_error"] = repair.stderr[-800:]

    def read(level: Any, hosts: list[str], how: str) -> None:
        prof = ExecutionProfile(
            consistency_level=level, request_timeout=20, load_balancing_policy=WhiteListRoundRobinPolicy(hosts)
        )
        reader = Driver(hosts, port=9042, execution_profiles={EXEC_PROFILE_DEFAULT: prof})
        try:
            rows = {}
            sess = reader.connect()
            for s in streams:
                for r in sess.execute(f"SELECT version, payload FROM {KEYSPACE}.probe WHERE stream = %s", (s,)):
                    rows[(s, r.version)] = r.payload
        finally:
            reader.shutdown()
        for key, payload in acked.items():
            if rows.get(key) != payload:
                result.problem("lost", f"read at {how}: {key} acknowledged as {payload!r}, read {rows.get(key)!r}")
        extra = set(rows) - set(acked)
        for key in sorted(extra)[:3]:
            result.problem("violation", f"read at {how}: row {key} was never acknowledged")
        result.figures.setdefault("read_back", {})[how] = len(rows)

    read(ConsistencyLevel.QUORUM, cluster.addresses, "QUORUM after the node returned")
    read(ConsistencyLevel.ALL, cluster.addresses, "ALL after the node returned")
    for other in cluster.addresses[:2]:
        cluster.stop(other)
    read(ConsistencyLevel.ONE, [victim], "ONE from the returned node alone")
    result.figures.update(
        {
            "writes_sent": stream.sent,
            "driver_errors_retried": stream.errors_retried,
            "given_up": stream.given_up,
            "node_down_during_writes": f"{stream.down_from}..{stream.back_at} (then restarting)",
            "rss_mib_before_kill": stream.rss_before_kill,
        }
    )
    if stream.given_up:
        result.problem("violation", f"{stream.given_up} writes got no answer within the retries")
    result.summary = (
        f"raw driver (no es_core backend yet): node {victim} SIGKILLed after {stream.down_from} of {stream.sent} "
        f"conditional QUORUM writes, restarted at {stream.back_at}; {len(acked)} acknowledged, "
        f"{stream.errors_retried} driver errors retried; every row read back at QUORUM and ALL, and from the "
        "returned node alone"
        if not (result.lost or result.duplicates or result.violations)
        else "see problems below"
    )
