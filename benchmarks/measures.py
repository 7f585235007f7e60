"""The shared measurements: seeding (the batch-append figure), loads and appends interleaved
operation by operation, and the figures and snapshot cost made from their series."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from typing import Any

from . import report
from .subjects import Step, Subject
from .timing import Log, Sample, Series, Task, interleaved, quiet, rounds
from .workload import Command, member_id, member_plan

ID_FLOOR = "floor_with_id_key"  # the floor plus a unique event-id key: es_core's guarantees, no more


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

    return rounds({name: task(s) for name, s in subjects.items()}, len(blocks), quiet(log, len(blocks)), label)

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
