"""``python -m benchmarks run``: es_core against the raw ``sqlite3`` floor and the peer library
on the downloads workload, every figure measured in the same process and run."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_core import MAX_EVENTS_PER_APPEND

from . import report
from .cassandra_run import CassandraUnavailable, run_cassandra
from .floors import SQLiteReadFloor, SQLiteWriteFloor
from .measures import ID_FLOOR, figure, measure_appends, measure_loads, seed, snapshot_cost
from .subjects import EsCore, Floor, Peer, Subject, load_peer, open_es
from .tables import FIGURES
from .target import Target, resolve_target
from .timing import Log, Sample, Series, Task, rounds, time_all
from .workload import DEFAULT_SEED, Command, member_id, member_plan


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

@dataclass
class _Subjects:
    """Everything one local run measures: the implementations without and with snapshots, the
    floor's readers of es_core's files, and what to close at the end."""

    plain: dict[str, Any]
    snap: dict[str, Any]
    peer_module: Any
    peer_info: dict[str, Any]
    durability: dict[str, Any]
    closers: list[Callable[[], None]] = field(default_factory=list)
    loads_plain: dict[str, Subject] = field(default_factory=dict)
    loads_snap: dict[str, Subject] = field(default_factory=dict)

    def close(self) -> None:
        for close in self.closers:
            close()


def _run_local(config: RunConfig, target: Target, log: Log) -> dict[str, Any]:
    t0 = time.perf_counter()
    log(f"workload: {config.members} members x {config.events} events (seed {config.seed})")
    plans = [member_plan(i, config.events, seed=config.seed) for i in range(config.members)]
    subjects = _open_subjects(config, target)
    try:
        batch = _seed_both(config, subjects, plans, log)
        _open_readers(target, subjects)
        equivalence = _equivalence(config, target, subjects.plain, subjects.peer_module, _mix(plans))
        series = _measure(config, subjects, equivalence, log)
    finally:
        subjects.close()
    results = _results(config, batch, series)
    if target.kind == "sqlite" and target.directory is not None:  # the subscription figures need files
        from . import subscriptions

        results["subscription"] = subscriptions.measure(
            target.path("es_core"), target.directory, config.read_rounds, log, seed=config.seed,
            lag_members=min(100, config.members), lag_days=60 if config.members >= 100 else 10,
        )
    return {
        "peer": subjects.peer_info,
        "durability": subjects.durability,
        "equivalence": equivalence,
        "results": results,
        "targets": check_targets(results) if subjects.peer_module is not None else check_targets(
            results, [t for t in TARGETS if "peer" not in t[0]]),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def _mix(plans: list[list[Command]]) -> dict[str, int]:
    mix: dict[str, int] = {}
    for plan in plans:
        for command in plan:
            mix[command.kind] = mix.get(command.kind, 0) + 1
    return mix


def _open_subjects(config: RunConfig, target: Target) -> _Subjects:
    """es_core without and with snapshots, the floors (SQLite only) and the peer (if installed)."""
    peer_module, peer_info = load_peer(config.peer and target.kind == "sqlite")
    if target.kind != "sqlite" and config.peer:
        peer_info = {"available": False, "reason": "the peer and the floor run on SQLite only"}
    es_plain, es_snap = open_es(target, "es_core"), open_es(target, "es_core_snap")
    plain, snap = EsCore(es_plain), EsCore(es_snap, snapshot_every=config.snapshot_every)
    subjects = _Subjects({"es_core": plain}, {"es_core": snap}, peer_module, peer_info,
                         {"es_core": plain.settings()}, [es_plain.close, es_snap.close])
    if target.kind == "sqlite":
        floor_writer = SQLiteWriteFloor(target.path("floor"), synchronous=target.synchronous)
        id_floor_writer = SQLiteWriteFloor(target.path("floor_id"), synchronous=target.synchronous,
                                           unique_event_id=True)
        subjects.plain["floor"], subjects.plain[ID_FLOOR] = Floor(floor_writer, None), Floor(id_floor_writer, None)
        subjects.closers += [floor_writer.close, id_floor_writer.close]
        subjects.durability["floor"] = floor_writer.settings()
    if peer_module is not None:
        peer_plain = Peer(peer_module, peer_module.open_app(target.path("peer")))
        peer_snap = Peer(peer_module, peer_module.open_app(target.path("peer_snap"),
                                                           snapshot_every=config.snapshot_every))
        subjects.plain["peer"], subjects.snap["peer"] = peer_plain, peer_snap
        subjects.closers += [peer_plain.close, peer_snap.close]
        peer_info["sqlite"] = subjects.durability["peer"] = peer_module.sqlite_settings(peer_plain.app)
    return subjects


def _seed_both(config: RunConfig, subjects: _Subjects, plans: list[list[Command]], log: Log) -> dict[str, Series]:
    """Every member's history into each implementation: whole (the batch-append figure), then
    in appends of ``snapshot_every`` events into the snapshotting ones."""
    k = config.snapshot_every
    log("seeding (batch appends: one append per member's history)")
    batch = seed(subjects.plain, plans, min(MAX_EVENTS_PER_APPEND, config.events), "m", log, "batch append")
    log(f"seeding with snapshots every {k} events (appends of {k} events)")
    seed(subjects.snap, plans, k, "m", log, "batch append, snapshotting")
    return batch


def _open_readers(target: Target, subjects: _Subjects) -> None:
    """Who loads and reads: es_core, the floor reading es_core's own files, and the peer."""
    subjects.loads_plain["es_core"] = subjects.plain["es_core"]
    subjects.loads_snap["es_core"] = subjects.snap["es_core"]
    if target.kind == "sqlite":
        reader_plain = SQLiteReadFloor(target.path("es_core"))
        reader_snap = SQLiteReadFloor(target.path("es_core_snap"))
        subjects.closers += [reader_plain.close, reader_snap.close]
        subjects.loads_plain["floor"] = Floor(None, reader_plain)
        subjects.loads_snap["floor"] = Floor(None, reader_snap, snapshots=True)
    if subjects.peer_module is not None:
        subjects.loads_plain["peer"], subjects.loads_snap["peer"] = subjects.plain["peer"], subjects.snap["peer"]


def _measure(config: RunConfig, subjects: _Subjects, equivalence: dict[str, Any], log: Log
             ) -> dict[str, dict[str, Series]]:
    """Loads (full replay, with snapshots), the global log read, the projection rebuild and
    one-command appends (snapshotting off and on), each over its rounds."""
    sample = [member_id(i) for i in random.Random(config.seed).sample(range(config.members),
                                                                       min(config.load_sample, config.members))]
    out: dict[str, dict[str, Series]] = {}
    log(f"loading {len(sample)} accounts per round, full replay")
    out["load"] = measure_loads(subjects.loads_plain, sample, config.rounds, config.seed, log, "load")
    log("loading with snapshots")
    out["load_snapshots"] = measure_loads(subjects.loads_snap, sample, config.rounds, config.seed, log,
                                          "load with snapshots")
    log("reading the global log")
    readers = subjects.loads_plain
    out["read_all"] = rounds({n: _reader(s) for n, s in readers.items()}, config.read_rounds, log, "read all")
    log("rebuilding a projection from the global log")
    summaries: dict[str, tuple[int, int, int]] = {}
    out["projection_rebuild"] = rounds({n: _rebuilder(s, n, summaries) for n, s in readers.items()},
                                       config.read_rounds, log, "projection rebuild")
    equivalence["projections_match"] = len(set(summaries.values())) == 1
    log("appending one event per command (durable), snapshotting off and on")
    plain, snap = subjects.plain, subjects.snap
    writers: dict[str, Subject] = {"es_core": plain["es_core"], "es_core+snapshots": snap["es_core"]}
    if "floor" in plain:
        writers["floor"], writers[ID_FLOOR] = plain["floor"], plain[ID_FLOOR]
    if subjects.peer_module is not None:
        writers["peer"], writers["peer+snapshots"] = plain["peer"], snap["peer"]
    out["append"] = measure_appends(writers, config.append_members, config.append_commands, config.append_rounds,
                                    config.seed, log, "append")
    return out


def _results(config: RunConfig, batch: dict[str, Series], series: dict[str, dict[str, Series]]) -> dict[str, Any]:
    append = series["append"]
    results: dict[str, Any] = {
        "append": figure({n: append[n] for n in ("es_core", "floor", ID_FLOOR, "peer") if n in append},
                         "events_per_s"),
        "batch_append": figure(batch, "events_per_s", latency=False),
        "load": figure(series["load"], "aggregates_per_s"),
        "load_snapshots": figure(series["load_snapshots"], "aggregates_per_s"),
        "read_all": figure(series["read_all"], "events_per_s", latency=False),
        "projection_rebuild": figure(series["projection_rebuild"], "events_per_s", latency=False),
        "snapshot_cost": {
            "snapshot_every": config.snapshot_every,
            "es_core": snapshot_cost(append["es_core"], append["es_core+snapshots"]),
        },
    }
    if "peer" in append:
        results["snapshot_cost"]["peer"] = snapshot_cost(append["peer"], append["peer+snapshots"])
    for key, label, unit in FIGURES:  # the saved file names its figures: readers need no code of ours
        results[key].update(label=label, unit=unit)
    return results


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
