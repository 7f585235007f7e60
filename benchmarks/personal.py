"""``python -m benchmarks personal``: what sealing personal fields costs (``EventStore.protect``),
on the downloads workload, against the same workload unprotected, in one run and process.

Three es_core stores of the same kind take the same histories: unprotected; protected with the
fields the downloads domain would mark personal (an account's country, a device's model: a few
events per member); and protected with a personal field in *every* event (the viewing history:
titles and devices of every licence), the worst case. Appends (one durable append per command)
and loads (full replay; with snapshots) are interleaved operation by operation between the
three, so the machine's noise falls on all alike; each cost is ``1 - protected / unprotected``
from paired per-round rates (0.05 = 5% slower).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from es_core import MAX_EVENTS_PER_APPEND, EventStore, LocalKeyEncryptionKey, PersonalData

from . import report
from .measures import measure_appends, measure_loads, seed
from .subjects import EsCore, Subject, open_es
from .target import resolve_target
from .timing import Log, Series
from .workload import DEFAULT_SEED, member_id, member_plan

VARIANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "downloads": {"AccountOpened": ("country",), "DeviceRegistered": ("model",)},
    "every_event": {
        "AccountOpened": ("country",),
        "DeviceRegistered": ("model",),
        "LicenseAcquired": ("title", "device_id"),
        "LicenseRenewed": ("title_id",),
        "LicenseReleased": ("device_id",),
    },
}
TARGET_COST = 0.15  # the bound for appends and loads on the downloads workload
KEK = LocalKeyEncryptionKey(bytes(range(32)), "bench")  # a fixed key: this measures cost, protects nothing


@dataclass
class PersonalConfig:
    store: str = "sqlite"
    members: int = 400
    events: int = 100
    seed: int = DEFAULT_SEED
    snapshot_every: int = 30
    rounds: int = 5
    append_rounds: int = 5
    load_sample: int = 200
    append_members: int = 8
    append_commands: int = 60
    workdir: Path | None = None
    keep: bool = False


def run_personal(config: PersonalConfig, log: Log) -> dict[str, Any]:
    target = resolve_target(config.store, config.workdir)
    if target.kind not in ("sqlite", "memory"):
        raise SystemExit("the personal-data benchmark runs on sqlite or memory://")
    t0 = time.perf_counter()
    stores: list[EventStore] = []

    def subject(name: str, fields: dict[str, tuple[str, ...]] | None, snapshot_every: int | None) -> Subject:
        store = open_es(target, name)
        stores.append(store)
        if fields is not None:
            store.protect(KEK, PersonalData(fields), initialise=True)
        return EsCore(store, snapshot_every=snapshot_every)

    try:
        plain = {"unprotected": subject("plain", None, None)}
        plain |= {v: subject(v, f, None) for v, f in VARIANTS.items()}
        snap = {"unprotected": subject("plain_snap", None, config.snapshot_every)}
        snap |= {v: subject(f"{v}_snap", f, config.snapshot_every) for v, f in VARIANTS.items()}
        log(f"workload: {config.members} members x {config.events} events (seed {config.seed})")
        plans = [member_plan(i, config.events, seed=config.seed) for i in range(config.members)]
        batch = seed(plain, plans, min(MAX_EVENTS_PER_APPEND, config.events), "m", log, "batch append")
        seed(snap, plans, config.snapshot_every, "m", log, "batch append, snapshotting")
        sample = [member_id(i) for i in random.Random(config.seed).sample(range(config.members),
                                                                           min(config.load_sample, config.members))]
        series = {
            "batch_append": batch,
            "load": measure_loads(plain, sample, config.rounds, config.seed, log, "load"),
            "load_snapshots": measure_loads(snap, sample, config.rounds, config.seed, log, "load with snapshots"),
            "append": measure_appends(plain, config.append_members, config.append_commands, config.append_rounds,
                                      config.seed, log, "append"),
        }
    finally:
        for store in stores:
            store.close()
        target.cleanup(config.keep)
    results = {name: _costs(s, "events_per_s" if "append" in name else "aggregates_per_s")
               for name, s in series.items()}
    return {
        "suite": "personal",
        "command": report.command_line(),
        "store": target.url,
        "workload": {"members": config.members, "events_per_member": config.events, "seed": config.seed,
                     "snapshot_every": config.snapshot_every, "personal_fields": VARIANTS},
        "machine": report.machine_info(target.directory),
        "results": results,
        "targets": [
            {"target": f"{name}: protected (downloads) costs <= {TARGET_COST:.0%}",
             "value": results[name]["downloads"]["cost"], "bound": f"<= {TARGET_COST}",
             "met": None if results[name]["downloads"]["cost"] is None
             else results[name]["downloads"]["cost"] <= TARGET_COST}
            for name in ("append", "load", "load_snapshots")
        ],
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def _costs(series: dict[str, Series], unit: str) -> dict[str, Any]:
    base = series["unprotected"]
    out: dict[str, Any] = {"unprotected": base.summary(unit)}
    for variant in VARIANTS:
        kept = report.paired_ratio(series[variant].rates, base.rates)
        out[variant] = series[variant].summary(unit) | {"cost": None if kept is None else round(1 - kept, 3)}
    return out


def human(result: dict[str, Any]) -> str:
    lines = [f"personal data: sealing cost on {result['store']} ({result['workload']['members']} members x "
             f"{result['workload']['events_per_member']} events)"]
    for name, figures in result["results"].items():
        costs = ", ".join(f"{v} {figures[v]['cost']:+.1%}" for v in VARIANTS if figures[v]["cost"] is not None)
        lines.append(f"  {name:<15} unprotected {figures['unprotected'][next(iter(figures['unprotected']))]:>10}"
                     f"  cost: {costs}")
    lines += [f"  target {t['target']}: {t['value']} ({'met' if t['met'] else 'NOT met'})" for t in result["targets"]]
    return "\n".join(lines)
