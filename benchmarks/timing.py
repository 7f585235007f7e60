"""Timing: rounds that rotate who goes first, operation-by-operation interleaving, and the
series of rates and latencies a figure is made from (medians and percentiles in ``report``)."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import report

Log = Callable[[str], None]


@dataclass
class Series:
    """One implementation's results over the rounds of one measurement."""

    rates: list[float] = field(default_factory=list)  # per round: operations per second
    latencies_ns: list[int] = field(default_factory=list)  # per operation, all rounds

    def summary(self, unit: str, latency: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {unit: report.rounded(report.median(self.rates)), "rounds": len(self.rates),
                               "per_round": [round(r) for r in self.rates]}
        if latency and self.latencies_ns:
            out["p50_ms"] = report.rounded(ms(report.percentile(self.latencies_ns, 50)), 3)
            out["p99_ms"] = report.rounded(ms(report.percentile(self.latencies_ns, 99)), 3)
        return out

def ms(ns: float | None) -> float | None:
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

def quiet(log: Log, total: int) -> Log:
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
