"""``python -m benchmarks scaling``: load cost as history grows (with and without snapshots),
append throughput lost to snapshotting at several intervals, and the simulator's rate."""

from __future__ import annotations

import gc
import importlib
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from es_core import MAX_EVENTS_PER_APPEND, EventStore

from . import report
from .floors import SQLiteReadFloor
from .measures import measure_appends, seed, snapshot_cost
from .subjects import EsCore, Floor, Peer, load_peer, open_es
from .target import Target, resolve_target
from .timing import Log, Series, interleaved, ms
from .workload import DEFAULT_SEED, member_id, member_plan


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
            es_plain, es_snap = open_es(target, f"{tag}-es_core"), open_es(target, f"{tag}-es_core_snap")
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
            "p50_ms": report.rounded(ms(report.percentile(lat, 50)), 3),
            "p99_ms": report.rounded(ms(report.percentile(lat, 99)), 3),
            "mean_ms": report.rounded(ms(sum(lat) / len(lat)) if lat else None, 3),
            "loads": len(lat),
        })
    return rows

def _scaling_appends(config: ScalingConfig, target: Target, peer_module: Any, log: Log) -> list[dict[str, Any]]:
    """Append throughput with snapshotting off and at each interval, in the same rounds."""
    stores: list[EventStore] = []
    subjects: dict[str, Any] = {}

    def es(name: str, every: int | None) -> EsCore:
        store = open_es(target, f"append-{name}")
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
        store = open_es(target, f"sim-{members}")
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
