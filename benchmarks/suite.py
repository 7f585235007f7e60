"""The measurements behind ``python -m benchmarks run`` and ``scaling``.

Every implementation under test is wrapped in a small adapter (es_core, the raw floor, the peer
library) offering the same operations: write a member's history in batches, run one command as
one durable append, load an account, read the global log, rebuild a projection. ``rounds`` runs
each adapter's task back to back in a rotating order, round after round, so slow spells on a
shared machine hit every implementation alike; appends and loads interleave even finer, operation
by operation. Figures are medians over rounds and ratios are medians of per-round ratios (see
``report``).
"""

from __future__ import annotations

import gc
import importlib
import inspect
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from es_core import (
    MAX_EVENTS_PER_APPEND,
    NO_SNAPSHOTS,
    EventStore,
    MemoryStore,
    ProjectionRunner,
    Repository,
    SnapshotPolicy,
    SQLiteStore,
)

from . import report
from .floors import SQLiteReadFloor, SQLiteWriteFloor, sqlite_settings
from .workload import DEFAULT_SEED, Command, MemberAccount, TitleActivity, member_id, member_plan, registry, run_command

Log = Callable[[str], None]
ID_FLOOR = "floor_with_id_key"  # the floor plus a unique event-id key: es_core's guarantees, no more
Step = Callable[[Command], None]


# -- where the databases live -----------------------------------------------------------------


@dataclass
class Target:
    """The store named on the command line: kind, where files go, and SQLite durability."""

    url: str
    kind: str  # sqlite | memory | cassandra
    directory: Path | None = None
    prefix: str = "bench"
    synchronous: str = "full"
    owned_directory: bool = False  # a temporary directory this run made (and removes)

    def path(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.prefix}.bench-{name}.db"

    def cleanup(self, keep: bool) -> None:
        """Remove this run's files: the temporary directory, or the ``<name>.bench-*.db`` files
        next to a named path (never the named file itself)."""
        if keep or self.directory is None:
            return
        if self.owned_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            self.remove_own_files()

    def remove_own_files(self) -> None:
        if self.directory is not None and self.directory.is_dir():
            for name in ("*.db", "*.db-wal", "*.db-shm"):
                for file in self.directory.glob(f"{self.prefix}.bench-{name}"):
                    file.unlink(missing_ok=True)


def resolve_target(url: str, workdir: Path | None) -> Target:
    """``sqlite`` (a fresh temporary directory), ``sqlite:///dir/name.db`` (files named
    ``name.bench-<part>.db`` in that directory, emptied at the start and removed at the end
    unless ``--keep``), ``memory://`` (es_core only) or ``cassandra://...``."""
    if url in ("sqlite", "sqlite://", "sqlite:///"):
        url = "sqlite"
    parts = urlsplit(url)
    scheme = parts.scheme or url
    if scheme == "memory":
        return Target(url, "memory")
    if scheme == "cassandra":
        return Target(url, "cassandra")
    if scheme != "sqlite":
        raise SystemExit(f"unknown --store {url!r}: use sqlite, sqlite:///path.db, memory:// or cassandra://...")
    synchronous = "full"
    for key, value in parse_qsl(parts.query):
        if key != "synchronous" or value not in SQLiteStore.SYNCHRONOUS:
            raise SystemExit(f"unsupported sqlite option {key}={value!r} (known: synchronous=full|normal)")
        synchronous = value
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if url == "sqlite" or not path:
        base = workdir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="es-bench-", dir=base))
        return Target(url, "sqlite", directory, "run", synchronous, owned_directory=True)
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    target = Target(url, "sqlite", file.parent, file.stem, synchronous)
    target.remove_own_files()  # a previous run's files: every run starts from empty databases
    return target


# -- timing ------------------------------------------------------------------------------------


@dataclass
class Series:
    """One implementation's results over the rounds of one measurement."""

    rates: list[float] = field(default_factory=list)  # per round: operations per second
    latencies_ns: list[int] = field(default_factory=list)  # per operation, all rounds

    def summary(self, unit: str, latency: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {unit: report.rounded(report.median(self.rates)), "rounds": len(self.rates),
                               "per_round": [round(r) for r in self.rates]}
        if latency and self.latencies_ns:
            out["p50_ms"] = report.rounded(_ms(report.percentile(self.latencies_ns, 50)), 3)
            out["p99_ms"] = report.rounded(_ms(report.percentile(self.latencies_ns, 99)), 3)
        return out


def _ms(ns: float | None) -> float | None:
    return None if ns is None else ns / 1e6


@dataclass
class Sample:
    count: int
    elapsed_ns: int
    latencies_ns: list[int] = field(default_factory=list)


Task = Callable[[int], Sample]


def rounds(tasks: dict[str, Task], count: int, log: Log, label: str) -> dict[str, Series]:
    """Run every task once per round, rotating who goes first."""
    names = list(tasks)
    out = {name: Series() for name in names}
    for r in range(count):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            sample = tasks[name](r)
            if sample.count:
                out[name].rates.append(sample.count / (sample.elapsed_ns / 1e9))
                out[name].latencies_ns.extend(sample.latencies_ns)
        log(f"  {label}: round {r + 1}/{count}")
    return out


def time_all(fn: Callable[[], int]) -> Sample:
    start = time.perf_counter_ns()
    count = fn()
    return Sample(count, time.perf_counter_ns() - start)


# -- the implementations under test ------------------------------------------------------------


class Subject(Protocol):
    def batch(self, mid: str, plan: list[Command], chunk: int) -> None: ...
    def writer(self, mid: str) -> Step: ...
    def load(self, mid: str) -> object: ...


def stream_of(mid: str) -> str:
    return MemberAccount.stream_id_for(mid)


class EsCore:
    """es_core as a service uses it: aggregates, a repository, and the store's public API."""

    def __init__(self, store: EventStore, *, snapshot_every: int | None = None) -> None:
        self.store = store
        self.registry = registry()
        policy = SnapshotPolicy(every=snapshot_every) if snapshot_every else NO_SNAPSHOTS
        self.repository = Repository(store, self.registry, MemberAccount, policy)

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        account = MemberAccount(mid)
        for start in range(0, len(plan), chunk):
            for command in plan[start : start + chunk]:
                run_command(account, command)
            self.repository.save(account)

    def writer(self, mid: str) -> Step:
        account, save = MemberAccount(mid), self.repository.save

        def step(command: Command) -> None:
            run_command(account, command)
            save(account)

        return step

    def load(self, mid: str) -> MemberAccount:
        return self.repository.load(mid)

    def summary(self, mid: str) -> tuple[Any, ...]:
        account = self.load(mid)
        s = account.state
        return account.version, s.plan, sorted(s.devices), sorted(s.active), s.acquired, s.renewed, s.released

    def read_all(self) -> int:
        count = 0
        for _ in self.store.read_all():
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        projection = TitleActivity()
        ProjectionRunner(self.store, self.registry, projection).rebuild()
        return projection.summary()

    def settings(self) -> dict[str, str]:
        if isinstance(self.store, SQLiteStore):
            return sqlite_settings(self.store._db)
        return {"store": type(self.store).__name__}


class Floor:
    """The raw sqlite3 floor: writes to its own file, reads es_core's file."""

    def __init__(self, writer: SQLiteWriteFloor | None, reader: SQLiteReadFloor | None, *, snapshots: bool = False):
        self.writer_db, self.reader, self.snapshots = writer, reader, snapshots

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        assert self.writer_db is not None
        stream = stream_of(mid)
        for start in range(0, len(plan), chunk):
            self.writer_db.append_batch(stream, start + 1, [(c.kind, c.args) for c in plan[start : start + chunk]])

    def writer(self, mid: str) -> Step:
        assert self.writer_db is not None
        append, stream, version = self.writer_db.append, stream_of(mid), 0

        def step(command: Command) -> None:
            nonlocal version
            version += 1
            append(stream, version, command.kind, command.args)

        return step

    def load(self, mid: str) -> object:
        assert self.reader is not None
        if self.snapshots:
            return self.reader.load_with_snapshot(stream_of(mid))
        return self.reader.load(stream_of(mid))

    def read_all(self) -> int:
        assert self.reader is not None
        count = 0
        for _ in self.reader.read_all():
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        assert self.reader is not None
        projection = TitleActivity()
        handle = projection.handle_payload
        for _, event_type, data in self.reader.read_all():
            handle(event_type, data)
        return projection.summary()


class Peer:
    """The ``eventsourcing`` library's application, as its documentation shows it used."""

    def __init__(self, module: Any, app: Any) -> None:
        self.m, self.app = module, app

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        account = None
        for start in range(0, len(plan), chunk):
            for command in plan[start : start + chunk]:
                if account is None:
                    account = self.m.open_account(command.args)
                else:
                    run_command(account, command)
            self.app.save(account)

    def writer(self, mid: str) -> Step:
        account: Any = None
        save, open_account = self.app.save, self.m.open_account

        def step(command: Command) -> None:
            nonlocal account
            if account is None:
                account = open_account(command.args)
            else:
                run_command(account, command)
            save(account)

        return step

    def load(self, mid: str) -> Any:
        return self.app.repository.get(self.m.account_id(mid))

    def close(self) -> None:
        self.app.close()

    def summary(self, mid: str) -> tuple[Any, ...]:
        a = self.load(mid)
        return a.version, a.plan, sorted(a.devices), sorted(a.active), a.acquired, a.renewed, a.released

    def read_all(self) -> int:
        count = 0
        for _ in self.m.read_log(self.app):
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        projection = TitleActivity()
        handle = projection.handle_object
        for event in self.m.read_log_typed(self.app):
            handle(type(event).__name__, event)
        return projection.summary()


def load_peer(enabled: bool) -> tuple[Any | None, dict[str, Any]]:
    """The peer module, or None and why not: the library is an optional extra."""
    if not enabled:
        return None, {"available": False, "reason": "disabled with --no-peer"}
    try:
        module = importlib.import_module("benchmarks.peer")
    except ImportError as exc:
        return None, {"available": False, "reason": f"eventsourcing is not installed ({exc})"}
    return module, {"available": True, "library": "eventsourcing", "version": module.version()}


# -- the shared measurements -------------------------------------------------------------------


def seed(subjects: dict[str, Subject], plans: list[list[Command]], chunk: int, prefix: str, log: Log,
         label: str) -> dict[str, Series]:
    """Write every member's history in appends of ``chunk`` events, in blocks of members that
    rotate between the subjects; the rate is the batch-append throughput."""
    block = max(1, min(50, len(plans) // 10 or 1))
    blocks = [range(i, min(i + block, len(plans))) for i in range(0, len(plans), block)]

    def task(subject: Subject) -> Task:
        def run(r: int) -> Sample:
            start = time.perf_counter_ns()
            events = 0
            for i in blocks[r]:
                subject.batch(member_id(i, prefix), plans[i], chunk)
                events += len(plans[i])
            return Sample(events, time.perf_counter_ns() - start)

        return run

    return rounds({name: task(s) for name, s in subjects.items()}, len(blocks), _quiet(log, len(blocks)), label)


def _quiet(log: Log, total: int) -> Log:
    """Log only about ten progress lines for a long series of rounds."""
    every = max(1, total // 10)

    def out(message: str) -> None:
        done = int(message.rsplit(" ", 1)[-1].split("/")[0])
        if done % every == 0 or done == total:
            log(message)

    return out


def interleaved(ops: dict[str, Callable[[Any], object]], items: list[Any], series: dict[str, Series],
                seed_: int = 0) -> None:
    """Run every implementation's operation on each item, in a fresh random order per item,
    and add one round to each series. Interleaving at the finest grain means a slow spell of a
    shared disk or CPU lands on all of them alike; the random order means none always runs
    right after another (whose work would leave the caches warm or cold for it)."""
    clock = time.perf_counter_ns
    names = list(ops)
    latencies: dict[str, list[int]] = {name: [] for name in names}
    shuffle = random.Random(seed_).shuffle
    for item in items:
        shuffle(names)
        for name in names:
            start = clock()
            ops[name](item)
            latencies[name].append(clock() - start)
    for name, lat in latencies.items():
        if lat:
            series[name].rates.append(len(lat) / (sum(lat) / 1e9))
            series[name].latencies_ns.extend(lat)


def measure_loads(subjects: dict[str, Subject], ids: list[str], count: int, seed_: int, log: Log,
                  label: str) -> dict[str, Series]:
    """Each round loads every account in ``ids`` (shuffled) with every implementation in turn."""
    series = {name: Series() for name in subjects}
    for r in range(count):
        order = list(ids)
        random.Random(seed_ + r).shuffle(order)
        gc.collect()
        interleaved({name: s.load for name, s in subjects.items()}, order, series, seed_ + r)
        log(f"  {label}: round {r + 1}/{count}")
    return series


def measure_appends(subjects: dict[str, Subject], members: int, commands: int, count: int, seed_: int, log: Log,
                    label: str, prefix: str = "r") -> dict[str, Series]:
    """One command = one durable append with an expected version. Each round opens ``members``
    new accounts per implementation (the same plans for all) and runs their first ``commands``
    commands, taking turns between the accounts as a service's traffic does, and between the
    implementations command by command."""
    series = {name: Series() for name in subjects}
    for r in range(count):
        tag = f"{prefix}{r}x"
        plans = [member_plan(i, commands, seed=seed_, prefix=tag) for i in range(members)]
        steps = {name: [s.writer(member_id(i, tag)) for i in range(members)] for name, s in subjects.items()}
        work = [(i, plans[i][j]) for j in range(commands) for i in range(members)]

        def op(writers: list[Step]) -> Callable[[tuple[int, Command]], None]:
            return lambda item: writers[item[0]](item[1])

        gc.collect()
        interleaved({name: op(writers) for name, writers in steps.items()}, work, series, seed_ + r)
        log(f"  {label}: round {r + 1}/{count}")
    return series


def figure(series: dict[str, Series], unit: str, ours: str = "es_core", floor: str | None = "floor",
           peer: str | None = "peer", latency: bool = True) -> dict[str, Any]:
    """Absolute figures per implementation, plus es_core's ratios to the floor and the peer."""
    out: dict[str, Any] = {name: s.summary(unit, latency) for name, s in series.items()}
    if floor in series:
        out["ratio_to_floor"] = report.paired_ratio(series[ours].rates, series[floor].rates)
    if ID_FLOOR in series:
        out[f"ratio_to_{ID_FLOOR}"] = report.paired_ratio(series[ours].rates, series[ID_FLOOR].rates)
    if peer in series:
        out["ratio_to_peer"] = report.paired_ratio(series[ours].rates, series[peer].rates)
    return out


def snapshot_cost(off: Series, on: Series) -> dict[str, Any]:
    """The share of append throughput lost to snapshotting (0.05 = 5%), from the total time of
    every append of every round: the effect is a few percent, smaller than the round-to-round
    noise (a round's total swings with the WAL checkpoints it happens to meet), so pooling all
    operations estimates it better than a median of per-round ratios."""
    if not off.latencies_ns or not on.latencies_ns:
        return {"events_per_s_off": None, "events_per_s_on": None, "cost": None}
    rate_off = len(off.latencies_ns) / (sum(off.latencies_ns) / 1e9)
    rate_on = len(on.latencies_ns) / (sum(on.latencies_ns) / 1e9)
    return {
        "events_per_s_off": report.rounded(rate_off),
        "events_per_s_on": report.rounded(rate_on),
        "cost": round(1 - rate_on / rate_off, 3),
        "cost_median_of_rounds": None if (kept := report.paired_ratio(on.rates, off.rates)) is None
        else round(1 - kept, 3),
    }


# -- python -m benchmarks run ------------------------------------------------------------------


@dataclass
class RunConfig:
    store: str = "sqlite"
    workload: str = "downloads"
    members: int = 1000
    events: int = 100
    seed: int = DEFAULT_SEED
    snapshot_every: int = 30
    rounds: int = 5
    append_rounds: int = 9  # appends meet WAL checkpoints (tens of ms) by luck: more rounds even it out
    read_rounds: int = 5
    load_sample: int = 300
    append_members: int = 8
    append_commands: int = 90
    peer: bool = True
    workdir: Path | None = None
    keep: bool = False


TARGETS = (
    # (name, figure path, comparison, bound)
    ("append >= 1.5x peer", ("append", "ratio_to_peer"), ">=", 1.5),
    ("append >= 85% of floor", ("append", "ratio_to_floor"), ">=", 0.85),
    ("load (full replay) >= 4x peer", ("load", "ratio_to_peer"), ">=", 4.0),
    ("load with snapshots >= 2x peer", ("load_snapshots", "ratio_to_peer"), ">=", 2.0),
    ("snapshotting costs <= 5% of append", ("snapshot_cost", "es_core", "cost"), "<=", 0.05),
    ("global log read >= peer", ("read_all", "ratio_to_peer"), ">=", 1.0),
    ("subscription catch-up >= 80% of floor", ("subscription", "catch_up", "ratio_to_floor"), ">=", 0.8),
    ("subscription live lag p99 <= 50 ms", ("subscription", "live_lag", "separate_file", "p99_ms"), "<=", 50.0),
)


def check_targets(results: dict[str, Any], targets: Iterable[tuple[str, tuple[str, ...], str, float]] = TARGETS
                  ) -> list[dict[str, Any]]:
    out = []
    for name, path, op, bound in targets:
        value: Any = results
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"target": name, "value": value, "bound": f"{op} {bound}", "met": met})
    return out


def run(config: RunConfig, log: Log) -> dict[str, Any]:
    if config.workload != "downloads":
        raise SystemExit(f"unknown workload {config.workload!r} (known: downloads)")
    target = resolve_target(config.store, config.workdir)
    result: dict[str, Any] = {
        "suite": "run",
        "command": report.command_line(),
        "store": target.url,
        "workload": {
            "name": config.workload, "members": config.members, "events_per_member": config.events,
            "seed": config.seed, "snapshot_every": config.snapshot_every,
        },
        "machine": report.machine_info(target.directory),
        "settings": {
            "rounds": config.rounds, "append_rounds": config.append_rounds, "read_rounds": config.read_rounds,
            "load_sample": config.load_sample,
            "append_round": {"members": config.append_members, "commands_each": config.append_commands},
        },
    }
    if target.kind == "cassandra":
        try:
            result["cassandra"] = run_cassandra(config, target, log)
        except CassandraUnavailable as exc:
            result["cassandra"], result["cassandra_reason"] = "unavailable", str(exc)
        return result
    try:
        result.update(_run_local(config, target, log))
    finally:
        target.cleanup(config.keep)
    if config.keep and target.directory is not None:
        result["files"] = str(target.directory)
    return result


def _run_local(config: RunConfig, target: Target, log: Log) -> dict[str, Any]:
    t0 = time.perf_counter()
    peer_module, peer_info = load_peer(config.peer and target.kind == "sqlite")
    if target.kind != "sqlite" and config.peer:
        peer_info = {"available": False, "reason": "the peer and the floor run on SQLite only"}
    k = config.snapshot_every
    chunk = min(MAX_EVENTS_PER_APPEND, config.events)
    log(f"workload: {config.members} members x {config.events} events (seed {config.seed})")
    plans = [member_plan(i, config.events, seed=config.seed) for i in range(config.members)]
    mix: dict[str, int] = {}
    for plan in plans:
        for command in plan:
            mix[command.kind] = mix.get(command.kind, 0) + 1

    es_plain, es_snap = _open_es(target, "es_core"), _open_es(target, "es_core_snap")
    plain = {"es_core": EsCore(es_plain)}
    snap = {"es_core": EsCore(es_snap, snapshot_every=k)}
    floor_writer: SQLiteWriteFloor | None = None
    closers: list[Callable[[], None]] = [es_plain.close, es_snap.close]
    if target.kind == "sqlite":
        floor_writer = SQLiteWriteFloor(target.path("floor"), synchronous=target.synchronous)
        id_floor_writer = SQLiteWriteFloor(target.path("floor_id"), synchronous=target.synchronous,
                                           unique_event_id=True)
        plain["floor"] = Floor(floor_writer, None)
        plain[ID_FLOOR] = Floor(id_floor_writer, None)
        closers += [floor_writer.close, id_floor_writer.close]
    if peer_module is not None:
        peer_plain = Peer(peer_module, peer_module.open_app(target.path("peer")))
        peer_snap = Peer(peer_module, peer_module.open_app(target.path("peer_snap"), snapshot_every=k))
        plain["peer"], snap["peer"] = peer_plain, peer_snap
        closers += [peer_plain.close, peer_snap.close]
        peer_info["sqlite"] = peer_module.sqlite_settings(peer_plain.app)
    durability = {"es_core": plain["es_core"].settings()}  # type: ignore[attr-defined]
    if floor_writer is not None:
        durability["floor"] = floor_writer.settings()
    if "sqlite" in peer_info:
        durability["peer"] = peer_info["sqlite"]
    try:
        log("seeding (batch appends: one append per member's history)")
        batch = seed(plain, plans, chunk, "m", log, "batch append")  # type: ignore[arg-type]
        log(f"seeding with snapshots every {k} events (appends of {k} events)")
        seed(snap, plans, k, "m", log, "batch append, snapshotting")  # type: ignore[arg-type]

        readers: list[SQLiteReadFloor] = []
        loads_plain: dict[str, Subject] = {"es_core": plain["es_core"]}
        loads_snap: dict[str, Subject] = {"es_core": snap["es_core"]}
        if target.kind == "sqlite":
            reader_plain = SQLiteReadFloor(target.path("es_core"))
            reader_snap = SQLiteReadFloor(target.path("es_core_snap"))
            readers += [reader_plain, reader_snap]
            loads_plain["floor"] = Floor(None, reader_plain)
            loads_snap["floor"] = Floor(None, reader_snap, snapshots=True)
        if peer_module is not None:
            loads_plain["peer"], loads_snap["peer"] = plain["peer"], snap["peer"]
        closers += [r.close for r in readers]

        equivalence = _equivalence(config, target, plain, peer_module, mix)
        sample = [member_id(i) for i in random.Random(config.seed).sample(range(config.members),
                                                                           min(config.load_sample, config.members))]
        log(f"loading {len(sample)} accounts per round, full replay")
        load = measure_loads(loads_plain, sample, config.rounds, config.seed, log, "load")
        log("loading with snapshots")
        load_snap = measure_loads(loads_snap, sample, config.rounds, config.seed, log, "load with snapshots")

        log("reading the global log")
        readers_all = {name: s for name, s in loads_plain.items()}
        read = rounds({n: _reader(s) for n, s in readers_all.items()}, config.read_rounds, log, "read all")
        log("rebuilding a projection from the global log")
        summaries: dict[str, tuple[int, int, int]] = {}
        rebuild = rounds({n: _rebuilder(s, n, summaries) for n, s in readers_all.items()}, config.read_rounds, log,
                         "projection rebuild")
        equivalence["projections_match"] = len(set(summaries.values())) == 1

        log("appending one event per command (durable), snapshotting off and on")
        writers: dict[str, Subject] = {"es_core": plain["es_core"], "es_core+snapshots": snap["es_core"]}
        if "floor" in plain:
            writers["floor"], writers[ID_FLOOR] = plain["floor"], plain[ID_FLOOR]
        if peer_module is not None:
            writers["peer"], writers["peer+snapshots"] = plain["peer"], snap["peer"]
        append = measure_appends(writers, config.append_members, config.append_commands, config.append_rounds,
                                 config.seed, log, "append")
    finally:
        for close in closers:
            close()

    results: dict[str, Any] = {
        "append": figure({n: append[n] for n in ("es_core", "floor", ID_FLOOR, "peer") if n in append},
                         "events_per_s"),
        "batch_append": figure(batch, "events_per_s", latency=False),
        "load": figure(load, "aggregates_per_s"),
        "load_snapshots": figure(load_snap, "aggregates_per_s"),
        "read_all": figure(read, "events_per_s", latency=False),
        "projection_rebuild": figure(rebuild, "events_per_s", latency=False),
        "snapshot_cost": {
            "snapshot_every": k, "es_core": snapshot_cost(append["es_core"], append["es_core+snapshots"]),
        },
    }
    if "peer" in append:
        results["snapshot_cost"]["peer"] = snapshot_cost(append["peer"], append["peer+snapshots"])
    if target.kind == "sqlite" and target.directory is not None:  # the subscription figures need files
        from . import subscriptions

        results["subscription"] = subscriptions.measure(
            target.path("es_core"), target.directory, config.read_rounds, log, seed=config.seed,
            lag_members=min(100, config.members), lag_days=60 if config.members >= 100 else 10,
        )
    return {
        "peer": peer_info,
        "durability": durability,
        "equivalence": equivalence,
        "results": results,
        "targets": check_targets(results) if peer_module is not None else check_targets(
            results, [t for t in TARGETS if "peer" not in t[0]]),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def _open_es(target: Target, name: str) -> EventStore:
    if target.kind == "memory":
        return MemoryStore()
    return SQLiteStore(target.path(name), synchronous=target.synchronous)


def _reader(subject: Any) -> Task:
    return lambda r: time_all(subject.read_all)


def _rebuilder(subject: Any, name: str, summaries: dict[str, tuple[int, int, int]]) -> Task:
    def run(r: int) -> Sample:
        start = time.perf_counter_ns()
        summaries[name] = subject.rebuild()
        elapsed = time.perf_counter_ns() - start
        return Sample(_events_in(subject), elapsed)

    return run


def _events_in(subject: Any) -> int:
    if isinstance(subject, EsCore):
        return subject.store.head_position()
    if isinstance(subject, Peer):
        return int(subject.app.recorder.max_notification_id() or 0)
    assert isinstance(subject, Floor) and subject.reader is not None
    return int(subject.reader.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def _equivalence(config: RunConfig, target: Target, plain: dict[str, Any], peer_module: Any,
                 mix: dict[str, int]) -> dict[str, Any]:
    """Checks that the implementations stored the same thing: event counts, bytes per event,
    and (es_core vs peer) the same account state after replay."""
    expected = config.members * config.events
    out: dict[str, Any] = {"event_mix": dict(sorted(mix.items())), "events_expected": expected}
    counts = {"es_core": plain["es_core"].store.head_position()}
    sizes: dict[str, float] = {}
    if target.kind == "sqlite":
        sizes["es_core"] = _mean_bytes(target.path("es_core"), "events", "LENGTH(data) + LENGTH(metadata)")
        counts["floor"] = _count(target.path("floor"), "events")
        counts[ID_FLOOR] = _count(target.path("floor_id"), "events")
        sizes["floor"] = _mean_bytes(target.path("floor"), "events", "LENGTH(data) + LENGTH(metadata)")
    if peer_module is not None:
        events, total = peer_module.stored_bytes(plain["peer"].app)
        counts["peer"] = events
        sizes["peer"] = round(total / events, 1) if events else 0.0
        ids = [member_id(i) for i in range(min(config.members, 20))]
        out["states_match"] = all(plain["es_core"].summary(m) == plain["peer"].summary(m) for m in ids)
    out["events_stored"] = counts
    out["mean_stored_bytes_per_event"] = sizes
    out["counts_match"] = all(c == expected for c in counts.values())
    return out


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _mean_bytes(path: Path, table: str, expression: str) -> float:
    with sqlite3.connect(path) as db:
        value = db.execute(f"SELECT AVG({expression}) FROM {table}").fetchone()[0]
    return round(float(value or 0), 1)


# -- Cassandra ---------------------------------------------------------------------------------


def run_cassandra(config: RunConfig, target: Target, log: Log) -> Any:
    """es_core's Cassandra backend against the raw-driver floor, at the same concurrency (one
    request at a time): appends, batch appends and loads. Raises ``CassandraUnavailable`` (the
    run reports ``"unavailable"`` and why) when the backend or its node cannot be reached.
    The keyspace outlives the run, so every run writes streams of its own; sizes are capped
    (``CASSANDRA_MEMBERS``) as conditional writes take milliseconds each."""
    try:
        importlib.import_module("es_core.stores.cassandra")
    except ImportError as exc:
        raise CassandraUnavailable(f"es_core.stores.cassandra cannot be imported ({exc})") from exc
    from es_core import EventSourcingError, open_store

    from .floors import cassandra_floor

    try:
        store = open_store(target.url)
    except EventSourcingError as exc:
        raise CassandraUnavailable(f"{type(exc).__name__}: {exc}") from exc
    try:
        session = getattr(store, "session", None)
        es = EsCore(store)
        subjects: dict[str, Subject] = {"es_core": es}
        if session is not None:
            subjects["floor"] = _CassandraFloorSubject(cassandra_floor(session))
        run_tag = f"c{time.time_ns()}"
        members, events = min(config.members, CASSANDRA_MEMBERS), min(config.events, MAX_EVENTS_PER_APPEND)
        plans = [member_plan(i, events, seed=config.seed, prefix=f"{run_tag}m") for i in range(members)]
        log(f"cassandra: seeding {members} members x {events} events")
        batch = seed(subjects, plans, min(events, 100), f"{run_tag}m", log, "batch append")
        ids = [member_id(i, f"{run_tag}m") for i in range(members)]
        log("cassandra: loading")
        load = measure_loads(subjects, ids, config.rounds, config.seed, log, "load")
        log("cassandra: appending one event per command")
        append = measure_appends(subjects, min(config.append_members, 4), min(config.append_commands, 30),
                                 config.rounds, config.seed, log, "append", prefix=f"{run_tag}r")
        return {
            "members": members, "events_per_member": events,
            "floor": "raw driver, conditional inserts" if session is not None
            else "unavailable: the store exposes no session",
            "append": figure(append, "events_per_s"),
            "batch_append": figure(batch, "events_per_s", latency=False),
            "load": figure(load, "aggregates_per_s"),
        }
    finally:
        store.close()


CASSANDRA_MEMBERS = 20


class CassandraUnavailable(Exception):
    """The Cassandra backend or its node cannot be reached: reported, not raised."""


class _CassandraFloorSubject:
    def __init__(self, floor: Any) -> None:
        self.floor = floor

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        for start in range(0, len(plan), chunk):
            self.floor.append_batch(stream_of(mid), start + 1, [(c.kind, c.args) for c in plan[start : start + chunk]])

    def writer(self, mid: str) -> Step:
        stream, version = stream_of(mid), 0

        def step(command: Command) -> None:
            nonlocal version
            version += 1
            self.floor.append(stream, version, command.kind, command.args)

        return step

    def load(self, mid: str) -> object:
        return self.floor.load(stream_of(mid))


# -- python -m benchmarks scaling --------------------------------------------------------------


@dataclass
class ScalingConfig:
    store: str = "sqlite"
    sizes: tuple[int, ...] = (100, 1000, 10000)
    aggregates: int = 8
    snapshot_every: int = 30
    intervals: tuple[int, ...] = (10, 30, 100)
    sim_members: tuple[int, ...] = (1000, 10000)
    sim_days: int = 30
    rounds: int = 5
    append_members: int = 8
    append_commands: int = 90
    seed: int = DEFAULT_SEED
    peer: bool = True
    workdir: Path | None = None
    keep: bool = False


def scaling(config: ScalingConfig, log: Log) -> dict[str, Any]:
    target = resolve_target(config.store, config.workdir)
    if target.kind == "cassandra":
        raise SystemExit("the scaling run measures SQLite and memory stores; use `run` for Cassandra")
    result: dict[str, Any] = {
        "suite": "scaling",
        "command": report.command_line(),
        "store": target.url,
        "settings": {
            "sizes": list(config.sizes), "aggregates": config.aggregates, "snapshot_every": config.snapshot_every,
            "intervals": list(config.intervals), "rounds": config.rounds, "seed": config.seed,
            "simulator": {"members": list(config.sim_members), "days": config.sim_days},
        },
        "machine": report.machine_info(target.directory),
    }
    t0 = time.perf_counter()
    try:
        peer_module, peer_info = load_peer(config.peer and target.kind == "sqlite")
        result["peer"] = peer_info
        result["load"] = _scaling_loads(config, target, peer_module, log)
        result["append"] = _scaling_appends(config, target, peer_module, log)
        result["simulator"] = _simulator(config, target, log)
    finally:
        target.cleanup(config.keep)
    es_snap = [row for row in result["load"] if row["implementation"] == "es_core" and row["snapshots"]]
    if len(es_snap) >= 2:
        first, last = es_snap[0], es_snap[-1]
        growth = last["p50_ms"] / first["p50_ms"] if first["p50_ms"] else None
        result["targets"] = [
            {"target": f"load with snapshots flat within 1.5x from {first['events_per_aggregate']} to "
                       f"{last['events_per_aggregate']} events", "value": report.rounded(growth, 2),
             "bound": "<= 1.5", "met": growth is not None and growth <= 1.5},
        ]
        cost = next((a["es_core"]["cost"] for a in result["append"] if a["snapshot_every"] == config.snapshot_every),
                    None)
        result["targets"].append({"target": f"snapshotting every {config.snapshot_every} costs <= 5% of append",
                                  "value": cost, "bound": "<= 0.05", "met": cost is not None and cost <= 0.05})
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return result


def _scaling_loads(config: ScalingConfig, target: Target, peer_module: Any, log: Log) -> list[dict[str, Any]]:
    """Seed every history length first, then load them all in the same rounds, so a busy spell
    on the machine cannot pass for growth with history."""
    k = config.snapshot_every
    loaders: dict[str, Callable[[str], object]] = {}  # "size|implementation|snapshots" -> load
    closers: list[Callable[[], None]] = []
    try:
        for size in config.sizes:
            log(f"history of {size} events per aggregate, {config.aggregates} aggregates")
            plans = [member_plan(i, size, seed=config.seed) for i in range(config.aggregates)]
            tag = f"s{size}"
            es_plain, es_snap = _open_es(target, f"{tag}-es_core"), _open_es(target, f"{tag}-es_core_snap")
            closers += [es_plain.close, es_snap.close]
            plain: dict[str, Any] = {"es_core": EsCore(es_plain)}
            snap: dict[str, Any] = {"es_core": EsCore(es_snap, snapshot_every=k)}
            if peer_module is not None:
                plain["peer"] = Peer(peer_module, peer_module.open_app(target.path(f"{tag}-peer")))
                snap["peer"] = Peer(peer_module, peer_module.open_app(target.path(f"{tag}-peer_snap"),
                                                                      snapshot_every=k))
                closers += [plain["peer"].close, snap["peer"].close]
            seed(plain, plans, min(MAX_EVENTS_PER_APPEND, size), "m", log, f"seed {size}")
            seed(snap, plans, k, "m", log, f"seed {size} with snapshots")
            if target.kind == "sqlite":
                readers = [SQLiteReadFloor(target.path(f"{tag}-es_core")),
                           SQLiteReadFloor(target.path(f"{tag}-es_core_snap"))]
                closers += [r.close for r in readers]
                plain["floor"] = Floor(None, readers[0])
                snap["floor"] = Floor(None, readers[1], snapshots=True)
            for snapshots, subjects in ((False, plain), (True, snap)):
                for name, subject in subjects.items():
                    loaders[f"{size}|{name}|{int(snapshots)}"] = subject.load
        ids = [member_id(i) for i in range(config.aggregates)]
        series = {key: Series() for key in loaders}
        groups = sorted({key.rsplit("|", 2)[0] + "|" + key.rsplit("|", 1)[1] for key in loaders})
        for r in range(config.rounds):
            order = list(ids)
            random.Random(config.seed + r).shuffle(order)
            # every size in every round (drift spreads over all of them), but the implementations
            # interleave only within one (size, snapshots) group: a light load that follows a
            # 10,000-event replay would run on caches the replay has just flushed
            for group in groups:
                size_text, snapshots = group.split("|")
                ops = {key: load for key, load in loaders.items()
                       if key.startswith(f"{size_text}|") and key.endswith(f"|{snapshots}")}
                gc.collect()
                interleaved(ops, order, series, config.seed + r)
            log(f"  loads: round {r + 1}/{config.rounds}")
    finally:
        for close in closers:
            close()
    rows: list[dict[str, Any]] = []
    for key, s in series.items():
        size_text, name, snapshots = key.split("|")
        size, lat = int(size_text), s.latencies_ns
        rows.append({
            "events_per_aggregate": size, "implementation": name, "snapshots": snapshots == "1",
            "tail_events": size % k if snapshots == "1" else size,
            "p50_ms": report.rounded(_ms(report.percentile(lat, 50)), 3),
            "p99_ms": report.rounded(_ms(report.percentile(lat, 99)), 3),
            "mean_ms": report.rounded(_ms(sum(lat) / len(lat)) if lat else None, 3),
            "loads": len(lat),
        })
    return rows


def _scaling_appends(config: ScalingConfig, target: Target, peer_module: Any, log: Log) -> list[dict[str, Any]]:
    """Append throughput with snapshotting off and at each interval, in the same rounds."""
    stores: list[EventStore] = []
    subjects: dict[str, Any] = {}

    def es(name: str, every: int | None) -> EsCore:
        store = _open_es(target, f"append-{name}")
        stores.append(store)
        return EsCore(store, snapshot_every=every)

    subjects["es_core"] = es("off", None)
    for k in config.intervals:
        subjects[f"es_core@{k}"] = es(str(k), k)
    if peer_module is not None:
        subjects["peer"] = Peer(peer_module, peer_module.open_app(target.path("append-peer")))
        for k in config.intervals:
            subjects[f"peer@{k}"] = Peer(peer_module, peer_module.open_app(target.path(f"append-peer-{k}"),
                                                                              snapshot_every=k))
    log(f"append with snapshotting off and every {', '.join(map(str, config.intervals))} events")
    try:
        series = measure_appends(subjects, config.append_members, config.append_commands, config.rounds,
                                 config.seed, log, "append")
    finally:
        for store in stores:
            store.close()
        for subject in subjects.values():
            if isinstance(subject, Peer):
                subject.close()
    rows = []
    for k in config.intervals:
        row: dict[str, Any] = {"snapshot_every": k, "es_core": snapshot_cost(series["es_core"], series[f"es_core@{k}"])}
        if peer_module is not None:
            row["peer"] = snapshot_cost(series["peer"], series[f"peer@{k}"])
        rows.append(row)
    return rows


def _simulator(config: ScalingConfig, target: Target, log: Log) -> dict[str, Any]:
    """Simulator events/s, when the downloads domain ships ``downloads.simulator`` with a
    ``simulate(store, members=..., days=..., seed=...)`` entry point; otherwise marked
    unavailable. It runs on a fresh store of the kind under test, with its durability."""
    try:
        module = importlib.import_module("downloads.simulator")
    except ImportError as exc:
        return {"status": "unavailable", "reason": f"downloads.simulator cannot be imported ({exc})"}
    entry = getattr(module, "simulate", None) or getattr(module, "run", None)
    if entry is None or not callable(entry):
        return {"status": "unavailable", "reason": "downloads.simulator has no simulate() or run()"}
    params = inspect.signature(entry).parameters
    if "members" not in params:
        return {"status": "unavailable", "reason": f"{entry.__name__}() takes no members= argument"}
    rows = []
    for members in config.sim_members:
        store = _open_es(target, f"sim-{members}")
        kwargs: dict[str, Any] = {"members": members}
        if "days" in params:
            kwargs["days"] = config.sim_days
        if "seed" in params:
            kwargs["seed"] = config.seed
        try:
            log(f"simulator: {members} members")
            start = time.perf_counter()
            entry(store, **kwargs)
            elapsed = time.perf_counter() - start
            events = store.head_position()
        except Exception as exc:  # the simulator is someone else's moving target: report, don't crash
            return {"status": "error", "reason": f"{type(exc).__name__}: {exc}", "rows": rows}
        finally:
            store.close()
        rows.append({"members": members, "days": kwargs.get("days"), "events": events,
                     "seconds": round(elapsed, 2), "events_per_s": round(events / elapsed, 1) if elapsed else None})
    return {"status": "ok", "store": "sqlite" if target.kind == "sqlite" else target.kind,
            "synchronous": target.synchronous if target.kind == "sqlite" else None, "rows": rows}
