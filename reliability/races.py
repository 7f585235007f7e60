"""Races: 8+ processes sending commands about the same few members through the Aggregate Service
at once, each retrying a command (same request id) when another writer got there first.

Each process has its own store handle and its own service (caching members, snapshotting every
5 events), like separate servers. Command times are real time, so a command that waits out a
conflict is decided after commands stamped later than it, as happens between servers.

Afterwards every member stream is replayed event by event (``invariants.check_member_stream``):
versions contiguous, no event id twice, each request written by one append, and every limit
holding at every version: devices holding downloads within the plan, downloads per title within
the rolling year's limit, studio caps, downloads per device. Every acknowledgement must match
the store (nothing acknowledged is missing, nothing is stored twice, granted means granted),
and the service's load (snapshot + tail) must equal the serial replay.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from downloads import Command
from es_core import ConcurrencyError, SQLiteStore, StoreUnavailableError, open_store

from .report import ScenarioResult, timed
from .workload import (
    BASE_TIME,
    Ack,
    MemberView,
    learn,
    next_command,
    send,
    service_for,
    subscribe_all,
    verify_members,
    world,
)

MAX_RETRIES = 60  # per command; each waits a little longer (seeded jitter)


def _worker(args: dict[str, Any]) -> dict[str, Any]:
    """One racing process: ``commands`` seeded commands about ``members``, until the deadline."""
    rules, catalogue = world()
    rng = random.Random(args["seed"])
    store = open_store(args["url"])
    # one attempt per call: every conflict comes back here, is counted, and is retried
    service = service_for(store, rules, catalogue, max_attempts=1)
    views = {m: MemberView() for m in args["members"]}
    acks: list[dict[str, Any]] = []
    conflicts = unavailable = 0
    try:
        for n in range(args["commands"]):
            if time.time() > args["deadline"]:
                break
            member = rng.choice(args["members"])
            at = BASE_TIME + timedelta(seconds=time.time() - args["epoch"])
            command = next_command(rng, member, f"{args['tag']}-w{args['worker']}-{n}", at, views[member])
            ack, c, u = _submit(service, command, rng)
            conflicts, unavailable = conflicts + c, unavailable + u
            learn(views[member], command, ack)
            acks.append(ack.as_dict())
    finally:
        store.close()
    return {"acks": acks, "conflicts": conflicts, "unavailable": unavailable}


def _submit(service: Any, command: Command, rng: random.Random) -> tuple[Ack, int, int]:
    conflicts = unavailable = 0
    for attempt in range(1, MAX_RETRIES + 1):
        try:
            ack = send(service, command)
        except ConcurrencyError as exc:
            conflicts += 1
            last: Exception = exc
        except StoreUnavailableError as exc:  # SQLite busy, a Cassandra timeout: the write may have landed
            unavailable += 1
            last = exc
        else:
            ack.attempts = attempt
            return ack, conflicts, unavailable
        time.sleep(rng.uniform(0, 0.002 * attempt))
    return Ack.refused(command, last, MAX_RETRIES, failed=True), conflicts, unavailable


def run_races(
    url: str,
    *,
    seed: int,
    processes: int = 8,
    commands: int = 40,
    members: int = 4,
    time_limit: float = 120.0,
    store_label: str | None = None,
) -> ScenarioResult:
    """``url`` names a store every process can open (a SQLite file, a Cassandra keyspace)."""
    label = store_label or url.split(":", 1)[0]
    result = ScenarioResult("races", label, fault_kind="conflicts", ack_kind="commands")
    with timed(result):
        _run(result, url, seed, processes, commands, members, time_limit)
    return result


def _run(
    result: ScenarioResult, url: str, seed: int, processes: int, commands: int, n_members: int, time_limit: float
) -> None:
    rules, catalogue = world()
    tag = f"race{seed}-{time.time_ns() % 10**9:09d}"  # fresh members on a shared store
    members = [f"{tag}-m{k}" for k in range(n_members)]
    store = open_store(url)
    try:
        setup = subscribe_all(service_for(store, rules, catalogue), members, tag)
        epoch, deadline = time.time(), time.time() + time_limit
        jobs = [
            {
                "url": url,
                "seed": f"{seed}:race:{w}",
                "worker": w,
                "members": members,
                "commands": commands,
                "tag": tag,
                "epoch": epoch,
                "deadline": deadline,
            }
            for w in range(processes)
        ]
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            outputs = pool.map_async(_worker, jobs).get(timeout=time_limit + 60)
        acks = setup + [Ack(**a) for out in outputs for a in out["acks"]]
        result.faults = sum(out["conflicts"] for out in outputs)
        result.acknowledged = sum(1 for a in acks if a.answered)
        checks = verify_members(store, members, acks, rules, catalogue, result)
    finally:
        store.close()
    sent = sum(len(out["acks"]) for out in outputs)
    failed = sum(1 for a in acks if a.status == "failed")
    granted = sum(1 for a in acks if a.status == "granted")
    denied = sum(1 for a in acks if a.status == "denied")
    events = sum(c.events for c in checks.values())
    result.figures = {
        "processes": processes,
        "members": n_members,
        "commands_sent": sent,
        "granted": granted,
        "denied": denied,
        "refused": sum(1 for a in acks if a.status == "refused"),
        "gave_up_after_retries": failed,
        "conflicts_retried": result.faults,
        "store_busy_retried": sum(out["unavailable"] for out in outputs),
        "events": events,
        "max_attempts": max((a.attempts for a in acks), default=0),
    }
    if sent < processes * commands:
        result.error = f"time limit of {time_limit:.0f}s reached after {sent} of {processes * commands} commands"
    result.summary = (
        f"{processes} processes x {commands} commands on {n_members} members: {granted} granted, {denied} denied, "
        f"{result.faults} conflicts retried, {failed} given up; {events} events replayed version by version, "
        "every limit held at every version, service load == serial replay"
        if not (result.lost or result.duplicates or result.violations)
        else f"{processes} processes x {commands} commands on {n_members} members, {events} events: see problems"
    )


def skipped_races(store: str, why: str) -> ScenarioResult:
    return ScenarioResult("races", store, fault_kind="conflicts", ack_kind="commands", skipped=why)


def sqlite_url(workdir: Path) -> str:
    path = workdir / "races.db"
    SQLiteStore.remove_files(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


__all__ = ["run_races", "skipped_races", "sqlite_url"]
