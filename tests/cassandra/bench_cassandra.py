"""Cassandra backend against the raw-driver floor, in one run (a script, not a timed test).

    python tests/cassandra/bench_cassandra.py [--url cassandra://127.0.0.1:9042/es_bench?replication_factor=1]
                                              [--rounds 3] [--quick] [--json]

Measures, on a fresh keyspace:

* appends/s at 1 and 32 requests in flight: ``CassandraStore.append`` of one event at an exact
  expected version (pending feed row, conditional batch, commit mark), against the floor: the
  same session running ``INSERT ... IF NOT EXISTS`` of the same event at the same concurrency;
* loads/s of a member account (``Repository.load``) with and without snapshots, against the
  floor for loads: one raw partition read, rows decoded with msgspec;
* partition sizes of a long stream (rows per partition, against the bucket width).

Rounds alternate which side goes first; figures are medians over rounds, ratios medians of
per-round ratios. Prints one JSON object with ``--json``, a table otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.workload import MemberAccount, member_plan, registry, run_command  # noqa: E402
from es_core import NO_SNAPSHOTS, NewEvent, Repository, SnapshotPolicy  # noqa: E402
from es_core.stores.cassandra import CassandraStore  # noqa: E402

DEFAULT_URL = "cassandra://127.0.0.1:9042/es_bench?replication_factor=1"
FLOOR_TABLE = "floor_events"


def _threads(concurrency: int, work: Callable[[int], int]) -> float:
    """Run ``work(worker)`` on ``concurrency`` threads; returns operations per second."""
    done = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def run(worker: int) -> None:
        start.wait()
        done[worker] = work(worker)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


class Floor:
    """The raw driver: one conditional insert per event, one partition read per load."""

    def __init__(self, store: CassandraStore) -> None:
        self.session = store.session
        ks = store.keyspace
        self.session.execute(
            f"CREATE TABLE IF NOT EXISTS {ks}.{FLOOR_TABLE} (stream_id text, version bigint, event_id uuid,"
            " event_type text, schema_version int, data blob, metadata blob, recorded_at bigint,"
            " PRIMARY KEY ((stream_id), version))"
        )
        self.insert = self.session.prepare(
            f"INSERT INTO {ks}.{FLOOR_TABLE} (stream_id, version, event_id, event_type, schema_version, data,"
            " metadata, recorded_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?) IF NOT EXISTS"
        )
        self.select = self.session.prepare(
            f"SELECT version, event_type, schema_version, data FROM {ks}.{FLOOR_TABLE} WHERE stream_id = ?"
        )

    def append(self, stream_id: str, version: int, event_type: str, data: dict[str, Any]) -> None:
        result = self.session.execute(
            self.insert,
            (stream_id, version, uuid.uuid4(), event_type, msgspec.json.encode(data), b"{}", time.time_ns() // 1000),
        )
        if not result.was_applied:
            raise RuntimeError(f"floor: {stream_id} v{version} exists")

    def load(self, stream_id: str) -> int:
        rows = [(r[0], r[1], msgspec.json.decode(r[3])) for r in self.session.execute(self.select, (stream_id,))]
        return len(rows)


def measure_appends(store: CassandraStore, floor: Floor, concurrency: int, per_worker: int, rounds: int) -> dict:
    plan = member_plan(1, per_worker)
    results: dict[str, list[float]] = {"es_core": [], "floor": []}
    ratios = []

    def es_core(tag: str) -> Callable[[int], int]:
        def work(worker: int) -> int:
            stream = f"{tag}-{worker}"
            for version, command in enumerate(plan):
                store.append(stream, [NewEvent(event_type=command.kind, data=command.args)], version)
            return len(plan)

        return work

    def raw(tag: str) -> Callable[[int], int]:
        def work(worker: int) -> int:
            stream = f"{tag}-{worker}"
            for version, command in enumerate(plan, start=1):
                floor.append(stream, version, command.kind, command.args)
            return len(plan)

        return work

    warm = uuid.uuid4().hex[:8]  # statements prepared, writer number claimed, connections warm
    _threads(concurrency, es_core(f"w{concurrency}-es-{warm}"))
    _threads(concurrency, raw(f"w{concurrency}-floor-{warm}"))
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
    }


def measure_loads(store: CassandraStore, floor: Floor, members: int, events: int, every: int, rounds: int) -> dict:
    reg = registry()
    plain = Repository(store, reg, MemberAccount, NO_SNAPSHOTS)
    snapshotting = Repository(store, reg, MemberAccount, SnapshotPolicy(every=every))
    tag = uuid.uuid4().hex[:8]
    ids = [f"l{tag}-{i}" for i in range(members)]
    for index, mid in enumerate(ids):  # seeded in appends of 20 events, snapshots every `every`
        account = MemberAccount(mid)
        plan = member_plan(index, events)
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
    for r in range(rounds):
        runs = [
            ("without_snapshots", lambda: timed(plain.load)),
            ("with_snapshots", lambda: timed(snapshotting.load)),
            ("floor", lambda: timed(floor.load, "-floor")),
        ]
        for name, run in runs if r % 2 == 0 else list(reversed(runs)):
            figures[name].append(run())
    account = plain.load(ids[0])
    return {
        "members": members,
        "events_per_member": account.version,
        "snapshot_every": every,
        "loads_per_s": {k: round(statistics.median(v), 1) for k, v in figures.items()},
        "without_snapshots_to_floor": round(
            statistics.median(a / b for a, b in zip(figures["without_snapshots"], figures["floor"], strict=True)), 3
        ),
        "replayed_per_load_with_snapshots": snapshotting.load(ids[0]).replayed_on_load,
    }


def measure_partitions(store: CassandraStore, events: int) -> dict:
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


def measure_settle(store: CassandraStore) -> dict:
    """The readers' side: settling everything written above fences each partition once."""
    before = dataclasses.asdict(store.feed_status())
    began = time.perf_counter()
    settled = store.settled_position()
    return {
        "before": {k: before[k] for k in ("lag_seconds", "unsettled_partitions")},
        "settle_seconds": round(time.perf_counter() - began, 3),
        "settled_is_head": settled == store.head_position(),
        "after": dataclasses.asdict(store.feed_status()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    CassandraStore.drop(args.url)  # every run starts from an empty keyspace
    store = CassandraStore.from_url(args.url)
    try:
        floor = Floor(store)
        quick = args.quick
        rounds = 1 if quick else args.rounds
        result = {
            "url": store.url,
            "appends": [
                measure_appends(store, floor, 1, 40 if quick else 300, rounds),
                measure_appends(store, floor, 32, 5 if quick else 40, rounds),
            ],
            "loads": measure_loads(store, floor, 5 if quick else 40, 60 if quick else 200, 50, rounds),
            "partitions": measure_partitions(store, 2500 if quick else 25_000),
            "feed": measure_settle(store),
        }
    finally:
        store.close()
    if args.json:
        print(json.dumps(result, default=str))
    else:
        for item in result["appends"]:
            print(
                f"appends, {item['in_flight']:>2} in flight: es_core {item['es_core_appends_per_s']:>8}/s, "
                f"floor {item['floor_appends_per_s']:>8}/s, ratio {item['ratio_to_floor']}"
            )
        print(f"loads: {result['loads']}")
        print(f"partitions: {result['partitions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
