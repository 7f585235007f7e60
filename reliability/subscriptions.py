"""Subscriptions under faults: every event's effect applied once, none skipped, none repeated.

**subscription-crash** (SQLite). A writer process appends to 16 streams without pause while a
projection process (``reliability.subscription_worker project``) follows the log live into a
read model kept in the store's own file, committing its position with each page. The parent
SIGKILLs the projection at a seeded random moment after it started, ``kills`` times, and starts
a new one each time (it takes over the dead copy's lease at once). At the end the read model is
compared with a from-scratch fold of the log: an event without its effect is *lost* (skipped),
an effect applied twice is a *duplicate*, a row no event explains or a wrong total a *violation*.

**subscription-copies** (SQLite). Two copies of one subscription are started at the same moment,
``rounds`` times, while the writer appends; after a seeded delay one of them (chosen at random)
is killed, then the other. Only one copy may advance at a time: the effects record which copy
applied them, and a copy that applies events after another copy took over is a violation.

**subscription-poison** (SQLite, memory). A log with poison events in the middle: the handler
raises on them until it is "fixed". With ``on_poison="park"`` each is retried, parked with its
error, and the others go on; after the fix ``retry_parked`` applies them. With ``"stop"`` the
subscription stops before the first one and, after the fix, ``resume`` goes on. Both read models
must equal the fold of the log.
"""

from __future__ import annotations

import itertools
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from es_core import MemoryStore, NewEvent, RecordedEvent, SQLiteStore, SubscriptionStoppedError, open_store
from es_core.subscriptions import Delivery, MemoryCheckpoints, SQLiteCheckpoints, Subscription, SubscriptionAdmin

from .report import ScenarioResult, timed
from .subscription_worker import STREAMS, create_model, model_handler, open_projection, reset_model

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 30.0


# -- the check shared by every scenario --------------------------------------------------------


def compare_with_fold(result: ScenarioResult, records: Iterable[RecordedEvent], effects: dict[tuple[str, int], int],
                      totals: dict[str, int]) -> int:
    """Compare a read model (effect counts per event, totals per stream) with a fold of the
    log's ``records``; returns how many events they are."""
    expected: dict[str, int] = Counter()
    seen: set[tuple[str, int]] = set()
    for record in records:
        key = (record.stream_id, record.version)
        seen.add(key)
        expected[record.stream_id] += int(record.data.get("amount", 0))
        applied = effects.get(key, 0)
        if applied == 0:
            result.problem("skipped", f"{key[0]} v{key[1]} (position {record.position}) has no effect", "skipped event")
        elif applied > 1:
            result.problem("duplicate", f"{key[0]} v{key[1]} applied {applied} times", "repeated effect")
    for key in effects.keys() - seen:
        result.problem("violation", f"effect for {key} that no event explains", "invented effect")
    for stream, total in expected.items():
        if totals.get(stream, 0) != total:
            result.problem("violation", f"{stream}: total {totals.get(stream, 0)}, the log says {total}", "wrong total")
    return len(seen)


def _sqlite_model(db: Path) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
    with sqlite3.connect(db) as conn:
        effects = {(s, v): n for s, v, n in conn.execute("SELECT stream_id, version, n FROM rel_effects")}
        totals = dict(conn.execute("SELECT stream_id, total FROM rel_totals").fetchall())
    conn.close()
    return effects, totals


# -- processes ---------------------------------------------------------------------------------


class _Writer:
    """The appending process, stopped by a file."""

    def __init__(self, db: Path, seed: str) -> None:
        self.stop_file = db.with_suffix(".stop")
        self.stop_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reliability.subscription_worker", "write", "--db", str(db), "--seed", seed,
             "--stop", str(self.stop_file)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        _ready(self.process)

    def finish(self) -> int:
        self.stop_file.touch()
        out, err = self.process.communicate(timeout=60)
        self.stop_file.unlink(missing_ok=True)
        if self.process.returncode != 0:
            raise RuntimeError(f"the writer failed: {err.strip()[-500:]}")
        return int(out.split()[-1])


def _projector(db: Path, name: str, page_size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reliability.subscription_worker", "project", "--db", str(db), "--name", name,
         "--page-size", str(page_size)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _ready(process: subprocess.Popen[str]) -> None:
    """Wait for the child's ``ready`` line (it has imported everything and opened the store)."""
    assert process.stdout is not None
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(READY_TIMEOUT)
    if not line or line[0].strip() != "ready":
        process.kill()
        _, err = process.communicate(timeout=30)
        raise RuntimeError(f"a child process did not start: {err.strip()[-500:]}")


def _kill(process: subprocess.Popen[str]) -> bool:
    """SIGKILL and reap (a zombie would look alive to the lease check); True if it was still running."""
    alive = process.poll() is None
    process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=30)
    if not alive and process.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"a projection died on its own: {err.strip()[-500:]}")
    return alive


def _catch_up_and_compare(result: ScenarioResult, db: Path, name: str) -> None:
    """After the faults: catch the subscription up (waiting out any lease), then compare its
    read model with a fold of the log."""
    store, subscription = open_projection(db, name, 200)
    try:
        subscription.catch_up(wait_for_lease=True)
        result.acknowledged = compare_with_fold(result, store.read_all(), *_sqlite_model(db))
    finally:
        subscription.checkpoints.close()
        store.close()


def _fresh(workdir: Path, file: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / file
    SQLiteStore.remove_files(db)
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        create_model(conn)
    conn.close()
    return db


# -- subscription-crash ------------------------------------------------------------------------


def run_subscription_crash(workdir: Path, *, seed: int, kills: int = 100, max_delay: float = 0.25,
                           time_limit: float = 300.0) -> ScenarioResult:
    result = ScenarioResult("subscription-crash", "sqlite", fault_kind="SIGKILLs", ack_kind="effects checked")
    with timed(result):
        db = _fresh(workdir, "subscription-crash.db")
        rng = random.Random(f"subscription-crash:{seed}")
        writer = _Writer(db, f"{seed}:writer")
        deadline = time.monotonic() + time_limit
        killed_running = 0
        try:
            for life in range(kills):
                if time.monotonic() > deadline:
                    result.error = f"time limit of {time_limit:.0f}s reached after {life} of {kills} kills"
                    break
                projector = _projector(db, "crash", rng.choice((1, 7, 50, 200)))
                try:
                    _ready(projector)
                    time.sleep(rng.uniform(0.0, max_delay))
                finally:
                    killed_running += _kill(projector)
                result.faults += 1
        finally:
            appended = writer.finish()
        _catch_up_and_compare(result, db, "crash")
        result.figures = {"events_appended": appended, "killed_while_running": killed_running}
        result.summary = (f"{result.faults} SIGKILLs of a live projection while a writer appended {appended} events; "
                          "the read model equals a fold of the log (each effect once)")
    return result


# -- subscription-copies -----------------------------------------------------------------------


def run_subscription_copies(workdir: Path, *, seed: int, rounds: int = 10) -> ScenarioResult:
    result = ScenarioResult("subscription-copies", "sqlite", fault_kind="copies raced", ack_kind="effects checked")
    with timed(result):
        db = _fresh(workdir, "subscription-copies.db")
        rng = random.Random(f"subscription-copies:{seed}")
        writer = _Writer(db, f"{seed}:writer")
        try:
            for _ in range(rounds):
                pair = [_projector(db, "copies", 20), _projector(db, "copies", 20)]
                try:
                    for process in pair:
                        _ready(process)
                    time.sleep(rng.uniform(0.1, 0.4))
                    rng.shuffle(pair)
                    _kill(pair[0])
                    time.sleep(rng.uniform(0.05, 0.3))  # the survivor takes over
                finally:
                    for process in pair:
                        _kill(process)
                result.faults += 2
        finally:
            appended = writer.finish()
        _catch_up_and_compare(result, db, "copies")
        owners = _owner_runs(db, result)
        result.figures = {"events_appended": appended, "owner_handovers": owners}
        result.summary = (f"{rounds} rounds of two copies started at once ({owners} handovers of the lease); "
                          "one copy advanced at a time and the read model equals a fold of the log")
    return result


def _owner_runs(db: Path, result: ScenarioResult) -> int:
    """Walk the effects in position order: a copy that reappears after another copy applied
    events was advancing beside it (a violation). Returns the number of handovers."""
    with sqlite3.connect(db) as conn:
        owners = [o for (o,) in conn.execute("SELECT owner FROM rel_effects ORDER BY position")]
    conn.close()
    finished: set[str] = set()
    handovers = 0
    for previous, current in itertools.pairwise(owners):
        if current != previous:
            handovers += 1
            finished.add(previous)
            if current in finished:
                result.problem("violation", f"copy {current} applied events again after another copy did",
                               "two copies advanced")
    return handovers


# -- subscription-poison -----------------------------------------------------------------------


def run_subscription_poison(workdir: Path, *, seed: int, store_kind: str, events: int = 400, poison: int = 3,
                            store_url: str = "") -> ScenarioResult:
    """``store_kind`` "memory", "sqlite", or "cassandra" (``store_url`` names the keyspace; the
    read model is then at least once, made idempotent with ``AppliedPositions``, and a rewound
    checkpoint redelivers the whole run's log on top of the poison events)."""
    result = ScenarioResult("subscription-poison", store_kind, fault_kind="poison events", ack_kind="effects checked")
    with timed(result):
        rng = random.Random(f"subscription-poison:{seed}")
        run = _PoisonRun(workdir, store_kind, store_url)
        bad = set(rng.sample(range(events // 4, 3 * events // 4), poison))
        for i in range(events):
            data: dict[str, Any] = {"amount": rng.randint(1, 100)}
            if i in bad:
                data["poison"] = True
            run.store.append(f"{run.prefix}acct-{rng.randrange(STREAMS)}", [NewEvent(event_type="Credited", data=data)])
        result.faults = poison
        try:
            for policy in ("park", "stop"):
                _poison_policy(result, run, policy, poison)
        finally:
            run.store.close()
        redelivered = " (and the whole log delivered again)" if store_kind == "cassandra" else ""
        result.summary = (f"{poison} poison events among {events}: parked then retried after the fix, and "
                          f"stopped before then resumed{redelivered}; both read models equal a fold of the log")
    return result


class _PoisonRun:
    """The poison scenario's store: a fresh one, or (Cassandra) a shared keyspace where this run
    uses streams and subscription names of its own and starts its subscriptions at the head."""

    def __init__(self, workdir: Path, store_kind: str, store_url: str) -> None:
        self.kind, self.workdir, self.prefix, self.start = store_kind, workdir, "", 0
        if store_kind == "memory":
            self.store: Any = MemoryStore()
        elif store_kind == "sqlite":
            self.store = SQLiteStore(_fresh(workdir, "poison.db"))
        else:
            self.store = open_store(store_url)
            self.prefix = f"r{uuid.uuid4().hex[:8]}-"
            self.start = self.store.head_position()

    def records(self) -> list[RecordedEvent]:
        return [r for r in self.store.read_all(after=self.start) if r.stream_id.startswith(self.prefix)]

    def checkpoints(self, policy: str) -> Any:
        if self.kind == "memory":
            return MemoryCheckpoints()
        if self.kind == "cassandra":
            from es_core.subscriptions.cassandra import CassandraCheckpoints

            return CassandraCheckpoints(self.store)
        checkpoints = SQLiteCheckpoints(self.workdir / f"poison-{policy}-model.db")
        create_model(checkpoints.db)
        return checkpoints


class _Model:
    """The poison scenario's read model, in memory, SQLite or Cassandra, with a handler that can
    be broken. On Cassandra the totals are an accumulation guarded by ``AppliedPositions``: a
    redelivered event must not add its amount twice."""

    def __init__(self, run: _PoisonRun, checkpoints: Any, name: str) -> None:
        self.run, self.checkpoints, self.name, self.broken = run, checkpoints, name, True
        self.effects: Counter[tuple[str, int]] = Counter()
        self.totals: Counter[str] = Counter()
        self.write = {"sqlite": model_handler("poison"), "memory": self._memory}.get(run.kind, self._cassandra)
        if run.kind == "cassandra":
            from es_core.subscriptions.cassandra import AppliedPositions

            self.applied = AppliedPositions(run.store, name)
            self.table = f"{run.store.keyspace}.rel_subscription_totals"
            run.store.session.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (sub text, stream_id text,"
                                      " total int, events set<int>, PRIMARY KEY (sub, stream_id))")

    def handle(self, d: Delivery) -> None:
        if self.broken and d.record.data.get("poison"):
            raise ValueError(f"cannot handle {d.record.stream_id} v{d.record.version}")
        self.write(d)

    def _memory(self, d: Delivery) -> None:
        self.effects[(d.record.stream_id, d.record.version)] += 1
        self.totals[d.record.stream_id] += int(d.record.data["amount"])

    def _cassandra(self, d: Delivery) -> None:
        stream = d.record.stream_id
        # keyed per event, not per stream: a parked event is applied after later events of its stream
        if not stream.startswith(self.run.prefix) or not self.applied.is_new(f"{stream}@{d.position}", d.position):
            return
        row = d.tx.execute(f"SELECT total FROM {self.table} WHERE sub = %s AND stream_id = %s",
                           (self.name, stream)).one()
        d.tx.execute(f"UPDATE {self.table} SET total = %s, events = events + %s WHERE sub = %s AND stream_id = %s",
                     ((row[0] if row else 0) + int(d.record.data["amount"]), {d.record.version}, self.name, stream))
        self.applied.record(f"{stream}@{d.position}", d.position)

    def read(self) -> tuple[dict[tuple[str, int], int], dict[str, int]]:
        if self.run.kind == "memory":
            return dict(self.effects), dict(self.totals)
        if self.run.kind == "sqlite":
            return _sqlite_model(self.checkpoints.path)
        rows = self.run.store.session.execute(f"SELECT stream_id, total, events FROM {self.table} WHERE sub = %s",
                                              (self.name,)).all()
        return {(s, v): 1 for s, _t, vs in rows for v in vs or ()}, {s: t for s, t, _vs in rows}


def _poison_policy(result: ScenarioResult, run: _PoisonRun, policy: str, poison: int) -> None:
    checkpoints = run.checkpoints(policy)
    name = f"{run.prefix}poison-{policy}"
    model = _Model(run, checkpoints, name)
    subscription = Subscription(run.store, checkpoints, name, model.handle, on_poison=policy,
                                max_attempts=3, on_reset=reset_model if run.kind == "sqlite" else None)
    admin = SubscriptionAdmin(run.store, checkpoints)
    if run.start:
        admin.reset(name, run.start)  # this run's events only
    if policy == "park":
        subscription.catch_up()
        parked = checkpoints.parked(subscription.name)
        if len(parked) != poison:
            result.problem("violation", f"{len(parked)} events parked, expected {poison}", "parking")
        model.broken = False
        outcome = subscription.retry_parked()
        if set(outcome.values()) - {"applied"}:
            result.problem("violation", f"retry after the fix: {outcome}", "retry")
    else:
        stops = 0
        while True:
            try:
                subscription.catch_up()
                break
            except SubscriptionStoppedError:
                stops += 1
                model.broken = False  # the fix, then the operator resumes
                admin.resume(subscription.name)
        if stops != 1:
            result.problem("violation", f"stopped {stops} times, expected once", "stop policy")
    if run.kind == "cassandra":  # at least once: a checkpoint that went back hands everything over again
        admin.reset(name, run.start)
        subscription.catch_up()
    effects, totals = model.read()
    result.acknowledged += compare_with_fold(result, run.records(), effects, totals)
    checkpoints.close()
