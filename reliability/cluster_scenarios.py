"""History-checked scenarios on the shared 3-node cluster: client processes append and project
(``reliability.clients``) while a nemesis (``reliability.nemesis``) injects one kind of fault;
then the histories are checked against a final read of the store (``reliability.checker``).

The scenarios share one keyspace, created afresh by the first of them (creating one takes
30 s on a loaded 2-core machine), each with streams of its own: replication factor 3, QUORUM
reads and writes, SERIAL Paxos and ``bucket_width=10`` (so batches cross partition
boundaries). A clock far ahead cannot carry the feed's settled position into the next scenario:
a handle's positions stay within ``clock_skew_ms`` of the cluster's clock.

Projections start first, so they see the whole run; the writers then run their seeded
operations; the nemesis heals (every node resumed, a killed node restarted); the projections
are told to stop and make one last catch-up; a fresh handle reads every stream of the run, both
as ``read_stream`` returns it and as rows of the events table, partition by partition.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checker import CheckReport, Row, check
from .cluster import ROOT, Cluster, cluster_url
from .history import load, read_records
from .nemesis import NodeKill, PauseNemesis, kill_mid_append, pause_plan
from .report import ScenarioResult, timed

BUCKET_WIDTH = 10
REQUEST_TIMEOUT_S = 3  # client side; the server gives up on a Paxos write after 2 s
KEYSPACE = "es_checked"
FINAL_CATCH_UP_S = 60.0  # a projection's last catch-up must finish within this, or the feed stalled


@dataclass(frozen=True)
class Size:
    writers: int
    operations: int  # per writer
    projections: int
    streams: int  # shared by every writer
    new_streams: int  # streams the writers race to create with NO_STREAM
    pause_cycles: int
    time_limit_s: float


SIZES = {
    "small": Size(writers=3, operations=30, projections=2, streams=4, new_streams=4, pause_cycles=2, time_limit_s=300),
    "large": Size(writers=5, operations=80, projections=3, streams=6, new_streams=8, pause_cycles=3,
                  time_limit_s=1500),
}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    name: str
    fault_kind: str
    writer_clock_s: float = 0.0  # the first writer's clock offset
    reader_clock_s: float = 0.0  # the first projection's clock offset
    nemesis: str = ""  # pause | kill-node | kill-client


SCENARIOS = (
    Scenario("skew-writer-lag-1s", "writer clock -1 s", writer_clock_s=-1.0),
    Scenario("skew-writer-lag-10s", "writer clock -10 s", writer_clock_s=-10.0),
    Scenario("skew-writer-lead-1m", "writer clock +60 s", writer_clock_s=60.0),
    Scenario("skew-reader-lead", "reader clock +2 s", reader_clock_s=2.0),
    Scenario("pause-replicas", "SIGSTOPs", nemesis="pause"),
    Scenario("kill-node", "node kills", nemesis="kill-node"),
    Scenario("kill-client", "client kills", nemesis="kill-client"),
)
BY_NAME = {s.name: s for s in SCENARIOS}
_created: set[str] = set()  # store URLs whose keyspace this process created afresh


def run_checked(scenario: Scenario, cluster: Cluster, *, workdir: Path, seed: int, size: str) -> ScenarioResult:
    result = ScenarioResult(scenario.name, "cassandra", fault_kind=scenario.fault_kind, ack_kind="appends")
    with timed(result):
        _Run(scenario, cluster, workdir, seed, SIZES[size], result).run()
    return result


class _Run:
    def __init__(
        self, scenario: Scenario, cluster: Cluster, workdir: Path, seed: int, size: Size, result: ScenarioResult
    ) -> None:
        self.scenario, self.cluster, self.size, self.seed, self.result = scenario, cluster, size, seed, result
        self.rng = random.Random(f"{seed}:{scenario.name}")
        self.dir = workdir / scenario.name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.histories = self.dir / "histories"
        self.histories.mkdir(parents=True)
        self.stop = self.dir / "stop"
        self.keyspace = KEYSPACE
        self.url = cluster_url(
            cluster, self.keyspace, bucket_width=BUCKET_WIDTH, request_timeout=REQUEST_TIMEOUT_S, connect_timeout=15
        )
        self.prefix = f"{scenario.name}-{seed}"
        self.deadline = time.monotonic() + size.time_limit_s
        self.figures: dict[str, Any] = result.figures
        self._killer: threading.Thread | None = None  # kill-client: the thread that kills and resumes
        self._killed: subprocess.Popen[bytes] | None = None

    # -- processes ----------------------------------------------------------------------------

    def _config(self, role: str, process: str, offset: float, **extra: Any) -> Path:
        from .clients import ClientConfig

        config = ClientConfig(
            role=role,
            process=process,
            url=self.url,
            history=str(self.histories / f"{process}.jsonl"),
            stop=str(self.stop),
            prefix=self.prefix,
            seed=self.seed,
            clock_offset_s=offset,
            streams=[f"{self.prefix}-s{k}" for k in range(self.size.streams)],
            new_streams=[f"{self.prefix}-new{k}" for k in range(self.size.new_streams)],
            operations=self.size.operations,
            bucket_width=BUCKET_WIDTH,
            **extra,
        )
        return config.save(self.dir / f"{process}.json")

    def _spawn(self, config: Path) -> subprocess.Popen[bytes]:
        err = (self.dir / f"{config.stem}.err").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "reliability.clients", str(config)], cwd=ROOT, stdout=err, stderr=err
        )

    def _wait_started(self, process: str) -> None:
        history = self.histories / f"{process}.jsonl"
        while time.monotonic() < self.deadline:
            if history.exists() and any(r["type"] == "start" for r in read_records(history)[0]):
                return
            time.sleep(0.2)
        raise RuntimeError(f"projection {process} did not start: {self._stderr(process)}")

    def _wait_writing(self, writers: dict[str, subprocess.Popen[bytes]]) -> None:
        for name, handle in writers.items():
            history = self.histories / f"{name}.jsonl"
            while time.monotonic() < self.deadline and handle.poll() is None:
                if history.exists() and history.stat().st_size:
                    break
                time.sleep(0.05)

    def _stderr(self, process: str) -> str:
        path = self.dir / f"{process}.err"
        return path.read_text(errors="replace")[-1500:] if path.exists() else ""

    def _join(self, process: str, handle: subprocess.Popen[bytes], timeout: float) -> None:
        try:
            code = handle.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            handle.kill()
            handle.wait()
            raise RuntimeError(f"client {process} did not finish in time") from None
        if code != 0:
            raise RuntimeError(f"client {process} exited with {code}: {self._stderr(process)}")

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        from es_core import StoreUnavailableError
        from es_core.stores.cassandra import CassandraStore

        self.cluster.wait_all()  # a node the previous scenario restarted may still be starting
        if self.url not in _created:
            begin = time.monotonic()
            for attempt in range(1, 6):  # nodes just started on a loaded machine may not answer yet
                try:
                    CassandraStore.drop(self.url)
                    CassandraStore.create(self.url)
                    break
                except StoreUnavailableError:
                    if attempt == 5:
                        raise
                    time.sleep(10 * attempt)
            _created.add(self.url)
            self.figures["keyspace_seconds"] = round(time.monotonic() - begin, 1)
        projections = {}
        try:
            for i in range(self.size.projections):
                name = f"r{i}"
                offset = self.scenario.reader_clock_s if i == 0 else 0.0
                projections[name] = self._spawn(self._config("projection", name, offset))
            for name in projections:
                self._wait_started(name)
            self._writers_under_faults()
            self.stop.touch()
            for handle in projections.values():
                try:
                    handle.wait(timeout=FINAL_CATCH_UP_S)
                except subprocess.TimeoutExpired:  # the feed stalled: its history lacks `done`
                    handle.kill()
                    handle.wait()
        finally:
            self.stop.touch()
            for handle in projections.values():
                if handle.poll() is None:
                    handle.kill()
                    handle.wait()
        self._check()

    def _writers_under_faults(self) -> None:
        writers = {}
        for i in range(self.size.writers):
            name = f"w{i}"
            offset = self.scenario.writer_clock_s if i == 0 else 0.0
            writers[name] = self._spawn(self._config("writer", name, offset))
        self._wait_writing(writers)  # a process takes seconds to start: faults begin once all write
        began = time.monotonic()
        heal = self._start_nemesis(writers)
        try:
            if self._killer is not None:  # it adds the writer that resumes the killed one's work
                self._killer.join(timeout=max(0.0, self.deadline - time.monotonic()))
            for name, handle in list(writers.items()):
                if handle is not self._killed:
                    self._join(name, handle, self.deadline - time.monotonic())
        finally:
            self.figures["writers_seconds"] = round(time.monotonic() - began, 1)
            heal()
            for handle in writers.values():
                if handle.poll() is None:  # the scenario failed: leave no client behind
                    handle.kill()
                    handle.wait()

    def _start_nemesis(self, writers: dict[str, subprocess.Popen[bytes]]) -> Callable[[], None]:
        """Start the scenario's fault; returns what heals it and counts the faults injected."""
        nemesis = self.scenario.nemesis
        if nemesis == "pause":
            plan = pause_plan(self.rng, self.cluster.addresses, self.size.pause_cycles)
            self.figures["pauses"] = [f"{p.at}s: {'+'.join(p.nodes)} for {p.seconds}s" for p in plan]
            pauses = PauseNemesis(self.cluster, plan)
            pauses.start()

            def resume() -> None:
                pauses.stop()
                self.result.faults += pauses.injected

            return resume
        if nemesis == "kill-node":
            victim = self.rng.choice(self.cluster.addresses[1:])  # not the seed: a restart joins through it
            kill = NodeKill(self.cluster, victim, at=self.rng.uniform(1, 3), down=self.rng.uniform(2, 5))
            self.figures["node_kill"] = f"{kill.victim} at {kill.at:.1f}s, restarted {kill.down:.1f}s later"
            kill.start()

            def restart() -> None:
                self.figures["node_back_after_writers_seconds"] = round(kill.finish(), 1)
                self.result.faults += kill.injected

            return restart
        if nemesis == "kill-client":
            self._killer = threading.Thread(target=self._kill_client, args=(writers,), daemon=True)
            self._killer.start()
            return lambda: None
        self.result.faults += 1  # the skewed clock
        return lambda: None

    def _kill_client(self, writers: dict[str, subprocess.Popen[bytes]]) -> None:
        history = self.histories / "w0.jsonl"
        answered = self.rng.randint(3, 8)  # kill it after this many answers, during the next append
        while time.monotonic() < self.deadline and writers["w0"].poll() is None:
            if history.exists() and sum(r["type"] != "invoke" for r in read_records(history)[0]) >= answered:
                break
            time.sleep(0.05)
        self._killed = writers["w0"]
        in_flight = kill_mid_append(writers["w0"], history, timeout=60)
        self.result.faults += 1
        self.figures["client_kill"] = "w0 SIGKILLed " + ("with an append in flight" if in_flight else "between appends")
        writers["w0-resumed"] = self._spawn(self._config("writer", "w0-resumed", 0.0, resume=[str(history)]))

    # -- the final read and the check ------------------------------------------------------------

    def _check(self) -> None:
        from es_core import open_store

        histories = load(self.histories)
        streams = sorted(histories.streams())
        with open_store(self.url) as store:
            raw, read_back = final_read(store, streams)
        report = check(histories, raw, read_back)
        self._report(report, histories.torn_lines)

    def _report(self, report: CheckReport, torn: int) -> None:
        r = self.result
        r.acknowledged, r.unknown = report.operations, report.unknown
        for problem in report.problems:
            r.problem(problem.kind, problem.detail, problem.category)
        self.figures.update(
            {
                "size": self.size.__dict__,
                "operations": report.operations,
                "invocations": report.invocations,
                "ok": report.ok,
                "fail": report.fail,
                "info": report.info,
                "unanswered": report.unanswered,
                "resolved_by_retry": report.resolved,
                "unresolved": report.unresolved,
                "events_acknowledged": report.events_acknowledged,
                "events_stored": report.events_stored,
                "events_seen_by_projections": report.events_seen,
                "torn_history_lines": torn,
            }
        )
        r.summary = (
            f"{self.size.writers} writers x {self.size.operations} appends, {self.size.projections} projections, "
            f"{r.faults} {self.scenario.fault_kind}: {report.ok} ok, {report.fail} refused, {report.unknown} unknown "
            f"({report.resolved} operations resolved by a retry, {report.unresolved} never); "
            f"{report.events_stored} events stored, {report.events_seen} seen by projections"
        )


def final_read(store: Any, streams: list[str]) -> tuple[list[Row], list[Row]]:
    """Every event of ``streams`` as rows of the events table (each partition read directly,
    so an event the stream's chain of partitions does not reach still shows) and as
    ``read_stream`` returns it."""
    read_back = [
        Row(stream, e.version, str(e.event_id), e.position) for stream in streams for e in store.read_stream(stream)
    ]
    session = getattr(store, "session", None)
    if session is None:
        return read_back, read_back
    highest = max((r.version for r in read_back), default=0)
    buckets = list(range(highest // store.bucket_width + 3))
    statement = session.prepare(
        f"SELECT bucket, version, event_id, position FROM {store.keyspace}.events WHERE stream_id = ? AND bucket IN ?"
    )
    raw = [
        Row(stream, version, str(event_id), position, bucket)
        for stream in streams
        for bucket, version, event_id, position in session.execute(statement, (stream, buckets))
        if event_id is not None  # a partition's static columns alone
    ]
    return raw, read_back
