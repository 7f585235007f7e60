"""``python -m benchmarks cassandra``: the Cassandra store against the raw-driver floor, on one
node and, with ``--cluster``, on a 3-node cluster (replication factor 3, QUORUM/SERIAL), each
on a fresh keyspace, every figure of a target from the same run.

* **costs**: client requests (round trips) and Paxos rounds (conditional statements) per append
  (a stream's first append, then appends at an exact expected version, then ``Expect.ANY``)
  and per ``settled_position()`` call, counted by the driver's request-init listener
  (``benchmarks.cassandra_counts``); the floor's own counts beside them;
* **appends/s** at 1 and 32 requests in flight: ``append`` of one event at an exact expected
  version, against the floor: the same session running a conditional ``INSERT ... IF NOT
  EXISTS`` of one event (``benchmarks.floors.CassandraFloor``) at the same concurrency; rounds
  alternate which side goes first; figures are medians, ratios medians of per-round ratios;
* **loads/s** of a member account with and without snapshots, against one raw partition read;
* **partitions** of a 25,000-event stream written in 999-event appends (rows per partition);
* **settle**: what one ``settled_position()`` after all of that fences, and how long it took.

A benchmark, not a test: run it on a quiet machine and compare ratios within one run.
"""

from __future__ import annotations

import dataclasses
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec

from es_core import (
    NO_SNAPSHOTS,
    ConcurrencyError,
    Expect,
    InvalidInputError,
    NewEvent,
    Repository,
    SnapshotPolicy,
)

from .cassandra_counts import Counts, RequestCounter
from .floors import CassandraFloor
from .report import machine_info
from .workload import MemberAccount, member_plan, registry, run_command

KEYSPACE = "es_bench"
Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Sizes:
    rounds: int = 3
    cost_streams: int = 50
    cost_appends: int = 300
    appends_single: int = 300  # per round, 1 in flight
    appends_each_of_32: int = 40  # per round and thread, 32 in flight
    load_members: int = 40
    load_events: int = 200
    wide_stream: int = 25_000


QUICK = Sizes(rounds=1, cost_streams=5, cost_appends=20, appends_single=20, appends_each_of_32=3, load_members=4,
              load_events=40, wide_stream=2_500)  # fmt: skip


def node_url() -> str:
    host, port = os.environ.get("ES_CASSANDRA_HOST", "127.0.0.1"), os.environ.get("ES_CASSANDRA_PORT", "9042")
    return f"cassandra://{host}:{port}/{KEYSPACE}?replication_factor=1"


def cluster_url(hosts: str) -> str:
    return f"cassandra://{hosts}:9042/{KEYSPACE}?replication_factor=3&consistency=QUORUM&serial_consistency=SERIAL"


def run(targets: list[tuple[str, str]], sizes: Sizes, log: Log) -> dict[str, Any]:
    """``targets``: (name, store URL) pairs, measured one after the other."""
    return {
        "suite": "cassandra",
        "machine": machine_info(),
        "targets": [measure_target(name, url, sizes, log) for name, url in targets],
    }


def measure_target(name: str, url: str, sizes: Sizes, log: Log) -> dict[str, Any]:
    from es_core.stores.cassandra import CassandraStore

    log(f"{name}: a fresh keyspace ({url})")
    CassandraStore.drop(url)
    store = CassandraStore.from_url(url)
    counter = RequestCounter(store.session)
    try:
        floor = CassandraFloor(store.session)
        out: dict[str, Any] = {"name": name, "url": store.url}
        log(f"{name}: costs")
        out["costs"] = measure_costs(store, floor, counter, sizes)
        out["appends"] = []
        for in_flight, each in ((1, sizes.appends_single), (32, sizes.appends_each_of_32)):
            log(f"{name}: appends, {in_flight} in flight")
            out["appends"].append(measure_appends(store, floor, in_flight, each, sizes.rounds))
        log(f"{name}: loads")
        out["loads"] = measure_loads(store, floor, sizes)
        log(f"{name}: partitions")
        out["partitions"] = measure_partitions(store, sizes.wide_stream)
        log(f"{name}: settling everything")
        out["settle"] = measure_settle(store, counter)
    finally:
        counter.close()
        store.close()
    return out


# -- costs -----------------------------------------------------------------------------------------


def _tick(i: int) -> list[NewEvent]:
    return [NewEvent(event_type="Tick", data={"i": i})]


def measure_costs(store: Any, floor: CassandraFloor, counter: RequestCounter, sizes: Sizes) -> dict[str, Any]:
    """Requests and Paxos rounds per append and per settle, one request in flight, appends spread
    over ``cost_streams`` streams as a service spreads them over members."""
    tag = uuid.uuid4().hex[:8]
    store.append(f"warm-{tag}", _tick(0), Expect.NO_STREAM)  # writer number claimed, statements prepared
    store.settled_position()
    streams = [f"c{tag}-{i}" for i in range(sizes.cost_streams)]
    rng = random.Random(7)
    out: dict[str, Any] = {}

    def counted(label: str, n: int, work: Callable[[], None]) -> Counts:
        before, began = counter.counts(), time.perf_counter()
        work()
        spent = counter.counts() - before
        out[label] = {**spent.per(n), "operations": n, "seconds": round(time.perf_counter() - began, 2)}
        return spent

    def firsts() -> None:
        for s in streams:
            store.append(s, _tick(0), Expect.NO_STREAM)

    counted("append_first_of_a_stream", len(streams), firsts)
    _settle_cost(store, counter, out, "settle_after_first_appends")
    versions = dict.fromkeys(streams, 1)

    def exact() -> None:
        for k in range(sizes.cost_appends):
            s = rng.choice(streams)
            store.append(s, _tick(k), versions[s])
            versions[s] += 1

    counted("append_exact_version", sizes.cost_appends, exact)
    _settle_cost(store, counter, out, "settle_after_exact_appends")

    def any_version() -> None:
        for k in range(sizes.cost_appends):
            store.append(rng.choice(streams), _tick(k))

    counted("append_any", sizes.cost_appends, any_version)
    floor_versions = dict.fromkeys(streams, 0)

    def raw() -> None:
        for k in range(sizes.cost_appends):
            s = rng.choice(streams)
            floor_versions[s] += 1
            floor.append(s, floor_versions[s], "Tick", {"i": k})

    counted("floor_conditional_insert", sizes.cost_appends, raw)
    out["appends_per_stream_per_second"] = round(
        sizes.cost_appends / sizes.cost_streams / max(out["append_exact_version"]["seconds"], 1e-9), 2
    )
    return out


def _settle_cost(store: Any, counter: RequestCounter, out: dict[str, Any], label: str) -> None:
    unsettled = store.feed_status().unsettled_partitions
    before, began = counter.counts(), time.perf_counter()
    store.settled_position()
    spent = counter.counts() - before
    out[label] = {"requests": spent.requests, "paxos_rounds": spent.paxos, "partitions_announced": unsettled,
                  "seconds": round(time.perf_counter() - began, 2)}  # fmt: skip


def measure_settle(store: Any, counter: RequestCounter) -> dict[str, Any]:
    """Settling everything the target's run wrote: fences each announced partition once."""
    before = dataclasses.asdict(store.feed_status())
    out: dict[str, Any] = {"before": {k: before[k] for k in ("lag_seconds", "unsettled_partitions")}}
    _settle_cost(store, counter, out, "settle")
    out["settled_is_head"] = store.settled_position(wait=False) == store.head_position()
    return out


# -- throughput ------------------------------------------------------------------------------------


def _threads(concurrency: int, work: Callable[[int], int]) -> float:
    """Run ``work(worker)`` on ``concurrency`` threads; returns operations per second."""
    done = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def run_one(worker: int) -> None:
        start.wait()
        done[worker] = work(worker)

    threads = [threading.Thread(target=run_one, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


def _until_answered(call: Callable[[], object], retries: list[int], *, landed: type[Exception] | None = None) -> None:
    """``call()`` again after an error that may be transient (a timeout under load, an unknown
    outcome), counting each retry; ``landed``: the error a retry of a landed write gives."""
    for attempt in range(1, 30):
        try:
            call()
            return
        except Exception as exc:
            if landed is not None and attempt > 1 and isinstance(exc, landed):
                return  # the first attempt landed
            if attempt == 29 or isinstance(exc, InvalidInputError | ConcurrencyError):
                raise
            retries[0] += 1
            time.sleep(min(0.05 * attempt, 1.0))


def measure_appends(store: Any, floor: CassandraFloor, concurrency: int, per_worker: int, rounds: int) -> dict:
    plan = member_plan(1, per_worker)
    results: dict[str, list[float]] = {"es_core": [], "floor": []}
    retries = {"es_core": [0], "floor": [0]}
    ratios = []

    def es_core(tag: str) -> Callable[[int], int]:
        def work(worker: int) -> int:
            stream = f"{tag}-{worker}"
            for version, command in enumerate(plan):
                events = [NewEvent(event_type=command.kind, data=command.args, event_id=uuid.uuid4())]
                # the same event ids on a retry: an append that landed is recognised
                _until_answered(partial(store.append, stream, events, version), retries["es_core"])
            return len(plan)

        return work

    def raw(tag: str) -> Callable[[int], int]:
        def work(worker: int) -> int:
            stream = f"{tag}-{worker}"
            for version, command in enumerate(plan, start=1):
                _until_answered(
                    partial(floor.append, stream, version, command.kind, command.args),
                    retries["floor"],
                    landed=RuntimeError,  # "exists": one writer per stream, so it is ours
                )
            return len(plan)

        return work

    warm = uuid.uuid4().hex[:8]  # connections warm, both statements prepared
    _threads(concurrency, es_core(f"w{concurrency}-es-{warm}"))
    _threads(concurrency, raw(f"w{concurrency}-floor-{warm}"))
    retries = {"es_core": [0], "floor": [0]}
    for r in range(rounds):
        tag = uuid.uuid4().hex[:8]
        order = [("es_core", es_core), ("floor", raw)] if r % 2 == 0 else [("floor", raw), ("es_core", es_core)]
        this_round = {}
        for name, make in order:
            this_round[name] = _threads(concurrency, make(f"a{concurrency}-{name}-{tag}"))
            results[name].append(this_round[name])
        ratios.append(this_round["es_core"] / this_round["floor"])
    return {
        "in_flight": concurrency,
        "appends_per_worker": per_worker,
        "es_core_appends_per_s": round(statistics.median(results["es_core"]), 1),
        "floor_appends_per_s": round(statistics.median(results["floor"]), 1),
        "ratio_to_floor": round(statistics.median(ratios), 3),
        "rounds": {k: [round(v, 1) for v in vs] for k, vs in results.items()},
        "retried_after_errors": {k: v[0] for k, v in retries.items()},
    }


# -- loads and partitions --------------------------------------------------------------------------


def measure_loads(store: Any, floor: CassandraFloor, sizes: Sizes, every: int = 50) -> dict:
    reg = registry()
    plain = Repository(store, reg, MemberAccount, NO_SNAPSHOTS)
    snapshotting = Repository(store, reg, MemberAccount, SnapshotPolicy(every=every))
    tag = uuid.uuid4().hex[:8]
    ids = [f"l{tag}-{i}" for i in range(sizes.load_members)]
    for index, mid in enumerate(ids):  # appends of 20 events, snapshots every `every`
        account = MemberAccount(mid)
        plan = member_plan(index, sizes.load_events)
        for start in range(0, len(plan), 20):
            for command in plan[start : start + 20]:
                run_command(account, command)
            snapshotting.save(account)
        for version, command in enumerate(plan, start=1):
            floor.append(f"{mid}-floor", version, command.kind, command.args)
    figures: dict[str, list[float]] = {"without_snapshots": [], "with_snapshots": [], "floor": []}

    def timed(load: Callable[[str], object], suffix: str = "") -> float:
        began = time.perf_counter()
        for mid in ids:
            load(mid + suffix)
        return len(ids) / (time.perf_counter() - began)

    timed(plain.load)  # warm-up
    timed(floor.load, "-floor")
    for r in range(sizes.rounds):
        runs = [
            ("without_snapshots", lambda: timed(plain.load)),
            ("with_snapshots", lambda: timed(snapshotting.load)),
            ("floor", lambda: timed(floor.load, "-floor")),
        ]
        for name, go in runs if r % 2 == 0 else list(reversed(runs)):
            figures[name].append(go())
    sample = member_plan(0, sizes.load_events)
    return {
        "members": sizes.load_members,
        "events_per_member": plain.load(ids[0]).version,
        "mean_event_data_bytes": round(statistics.mean(len(msgspec.json.encode(c.args)) for c in sample)),
        "snapshot_every": every,
        "loads_per_s": {k: round(statistics.median(v), 1) for k, v in figures.items()},
        "without_snapshots_to_floor": round(
            statistics.median(a / b for a, b in zip(figures["without_snapshots"], figures["floor"], strict=True)), 3
        ),
        "replayed_per_load_with_snapshots": snapshotting.load(ids[0]).replayed_on_load,
    }


def measure_partitions(store: Any, events: int) -> dict:
    stream = f"wide-{uuid.uuid4().hex[:8]}"
    version, batch = 0, 999  # 999-event appends: some cross a bucket boundary and overflow it
    while version < events:
        count = min(batch, events - version)
        store.append(stream, [NewEvent(event_type="Tick", data={"i": version + i}) for i in range(count)], version)
        version += count
    parts = store.partitions(stream)
    return {
        "stream_events": version,
        "bucket_width": store.bucket_width,
        "partitions": [{k: p[k] for k in ("bucket", "rows", "first_version", "last_version")} for p in parts],
        "max_rows_per_partition": max(p["rows"] for p in parts),
    }


def human(result: dict[str, Any]) -> str:
    lines = []
    for target in result["targets"]:
        lines.append(f"{target['name']} ({target['url']})")
        for label, cost in target["costs"].items():
            if isinstance(cost, dict):
                lines.append(f"  {label}: {cost}")
        for item in target["appends"]:
            lines.append(
                f"  appends, {item['in_flight']:>2} in flight: es_core {item['es_core_appends_per_s']:>8}/s, "
                f"floor {item['floor_appends_per_s']:>8}/s, ratio {item['ratio_to_floor']}"
            )
        lines.append(f"  loads/s: {target['loads']['loads_per_s']}")
        lines.append(f"  partitions: {[p['rows'] for p in target['partitions']['partitions']]} rows")
        lines.append(f"  settle: {target['settle']['settle']}")
    return "\n".join(lines)
