"""Idempotency: every command submitted up to 3 times, as clients retry after a lost reply.

A seeded script of commands is first run once each into a reference store. Then the same script
runs against a SQLite store with each command sent 1-3 times (seeded), in one of three ways:

* ``sequential``  the copies one after another, through the same service;
* ``concurrent``  the copies at the same moment, from separate services with their own store
                  handles (servers racing each other with the same request);
* ``later``       the retries after 1-5 further commands, through another service whose cache
                  may be stale (a retry that reaches another server late).

Every copy must get the answer the reference got (granted or denied, rule, licence, remaining,
retry time, reason; or the same refusal), and the store must end up holding exactly the
reference's events: same ids, types, data and versions, none missing, none twice. Finally, a few
requests are re-sent long after the member stopped remembering them: they may be refused as
forgotten, but must never be written again.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from downloads import Command, RequestForgottenError
from downloads.member import REQUEST_MEMORY
from es_core import EventStore, RecordedEvent, SQLiteStore, open_store

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

MODES = ("sequential", "concurrent", "later")


def run_idempotency(
    workdir: Path, *, seed: int, commands: int = 150, members: int = 3, stale_retries: int = 6, time_limit: float = 90.0
) -> ScenarioResult:
    result = ScenarioResult("idempotency", "sqlite", fault_kind="resubmissions", ack_kind="answers")
    with timed(result):
        _run(result, workdir, seed, commands, members, stale_retries, time_limit)
    return result


def _events(store: EventStore, members: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    def key(e: RecordedEvent) -> tuple[Any, ...]:
        return (e.version, e.event_id, e.event_type, e.data)

    return {m: [key(e) for e in store.read_stream(f"member-{m}")] for m in members}


def _script(seed: int, n: int, members: list[str], tag: str) -> tuple[list[Command], dict[str, Ack], Any, list[Ack]]:
    """The commands, decided once each against a reference store: the answers to expect."""
    rules, catalogue = world()
    reference = open_store("memory://")
    service = service_for(reference, rules, catalogue)
    setup = subscribe_all(service, members, tag)
    rng = random.Random(f"{seed}:idempotency")
    views = {m: MemberView() for m in members}
    script: list[Command] = []
    answers: dict[str, Ack] = {}
    for i in range(n):
        member = rng.choice(members)
        at = BASE_TIME + timedelta(minutes=10 * (i + 1))  # in order: this scenario is about retries, not clocks
        command = next_command(rng, member, f"{tag}-c{i}", at, views[member])
        ack = send(service, command)
        learn(views[member], command, ack)
        script.append(command)
        answers[command.request_id] = ack
    return script, answers, _events(reference, members), setup


def _run(
    result: ScenarioResult, workdir: Path, seed: int, n: int, n_members: int, stale: int, time_limit: float
) -> None:
    rules, catalogue = world()
    tag = f"idem{seed}"
    members = [f"{tag}-m{k}" for k in range(n_members)]
    script, answers, reference_events, _ = _script(seed, n, members, tag)
    path = workdir / "idempotency.db"
    SQLiteStore.remove_files(path)
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path.resolve()}"
    rng = random.Random(f"{seed}:copies")
    deadline = time.monotonic() + time_limit
    stores = [open_store(url) for _ in range(3)]  # three "servers" on one database
    services = [service_for(s, rules, catalogue) for s in stores]
    acks: list[Ack] = subscribe_all(services[0], members, tag)
    later: dict[int, list[Command]] = {}
    modes = dict.fromkeys(MODES, 0)
    try:
        for i, command in enumerate(script):
            if time.monotonic() > deadline:
                result.error = f"time limit of {time_limit:.0f}s reached after {i} of {len(script)} commands"
                break
            copies, mode = rng.choice((1, 2, 3)), rng.choice(MODES)
            reference = answers[command.request_id]
            if mode == "later" and not reference.answered:
                mode = "sequential"  # a refusal wrote nothing: sent again later it is a new decision
            modes[mode] += copies > 1
            result.faults += copies - 1
            if mode == "concurrent" and copies > 1:
                sent = _concurrently(services[:copies], command)
            else:
                sent = [send(services[0], command)]
                if mode == "sequential":
                    sent += [send(services[0], command) for _ in range(copies - 1)]
                else:
                    for _ in range(copies - 1):
                        later.setdefault(i + rng.randint(1, 5), []).append(command)
            for retry in later.pop(i, []):
                sent.append(send(services[rng.randrange(1, 3)], retry))
            acks += sent
        for i in sorted(later):  # retries still owed when the script ended
            acks += [send(services[1], retry) for retry in later[i]]
        forgotten = _stale_retries(services[2], script, answers, rng, stale, result)
    finally:
        for s in stores:
            s.close()
    differences = _compare(result, acks, answers)
    with open_store(url) as store:
        stored = _events(store, members)
        for member in members:
            _diff_events(result, member, reference_events[member], stored[member])
        verify_members(store, members, acks, rules, catalogue, result)
    result.acknowledged = sum(1 for a in acks if a.answered)
    events = sum(len(v) for v in stored.values())
    result.figures = {
        "commands": len(script),
        "submissions": len(acks),
        "resubmissions": result.faults,
        "commands_resent_by_mode": modes,
        "events_stored": events,
        "events_expected": sum(len(v) for v in reference_events.values()),
        "stale_retries": stale,
        "stale_retries_refused_as_forgotten": forgotten,
        **differences,
    }
    result.summary = (
        f"{len(script)} commands, {result.faults} resubmissions ({modes['sequential']} sequential, "
        f"{modes['concurrent']} concurrent, {modes['later']} later via another server); every answer as the "
        f"first, {events} events stored == the reference run; {stale} retries beyond the member's memory "
        "wrote nothing"
        if not (result.lost or result.duplicates or result.violations)
        else "see problems below"
    )


def _concurrently(services: list[Any], command: Command) -> list[Ack]:
    barrier = threading.Barrier(len(services))
    out: list[Ack | None] = [None] * len(services)

    def one(k: int) -> None:
        barrier.wait(timeout=10)
        out[k] = send(services[k], command)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(services))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return [a for a in out if a is not None]


def _compare(result: ScenarioResult, acks: list[Ack], answers: dict[str, Ack]) -> dict[str, int]:
    """Every answer against the reference; counts answers whose decision differs and answers
    that differ only in the member-facing reason text (both are violations)."""
    counts = {"decisions_differ": 0, "reason_text_differs": 0}
    for ack in acks:
        reference = answers.get(ack.request_id)
        if reference is None:
            continue  # set-up commands
        if ack.answered != reference.answered or (ack.answered and ack.decision() != reference.decision()):
            differs = [
                name
                for name, a, b in zip(
                    ("status", "rule", "license_id", "remaining", "retry_at", "reason"),
                    ack.decision(),
                    reference.decision(),
                    strict=True,
                )
                if a != b
            ]
            only_text = differs == ["reason"]
            counts["reason_text_differs" if only_text else "decisions_differ"] += 1
            if only_text:
                result.problem(
                    "violation",
                    f"{ack.request_id} ({ack.command}) {ack.reason!r}, first {reference.reason!r}",
                    category="an answer repeated with another reason text",
                )
                continue
            result.problem(
                "violation",
                f"{ack.request_id} ({ack.command}{', a retry' if ack.duplicate else ''}): {', '.join(differs)} "
                f"differ: {ack.decision()} vs first {reference.decision()}",
                category="an answer repeated with another decision",
            )
        elif not ack.answered and ack.error != reference.error:
            counts["decisions_differ"] += 1
            result.problem(
                "violation",
                f"{ack.request_id}: refused with {ack.error}, first with {reference.error}",
                "a refusal repeated with another error",
            )
    return counts


def _diff_events(
    result: ScenarioResult, member: str, expected: list[tuple[Any, ...]], stored: list[tuple[Any, ...]]
) -> None:
    expected_ids = {e[1] for e in expected}
    stored_ids = {e[1] for e in stored}
    for e in expected:
        if e[1] not in stored_ids:
            result.problem(
                "lost", f"member {member}: {e[2]} (event {e[1]})", "an event of the reference run is missing"
            )
    seen: set[Any] = set()
    for e in stored:
        if e[1] in seen or e[1] not in expected_ids:
            result.problem(
                "duplicate", f"member {member} v{e[0]}: {e[2]} (event {e[1]})", "an event the reference lacks"
            )
        seen.add(e[1])
    if not result.lost and not result.duplicates and expected != stored:
        result.problem("violation", f"member {member}: the stored events differ from the reference run's")


def _stale_retries(
    service: Any, script: list[Command], answers: dict[str, Ack], rng: random.Random, n: int, result: ScenarioResult
) -> int:
    """Re-send early requests the member has long forgotten (over REQUEST_MEMORY requests ago)."""
    by_member: dict[str, list[Command]] = {}
    for command in script:
        by_member.setdefault(command.member_id, []).append(command)
    old = [
        c
        for cs in by_member.values()
        for c in cs[: max(0, len(cs) - 2 * REQUEST_MEMORY)]
        if answers[c.request_id].answered and answers[c.request_id].events
    ]
    forgotten = 0
    for command in rng.sample(old, min(n, len(old))):
        result.faults += 1
        ack = send(service, command)
        if ack.error == RequestForgottenError.__name__:
            forgotten += 1
            continue
        if ack.events:
            result.problem("duplicate", f"{command.request_id}, re-sent late, wrote {ack.events} events again")
    return forgotten
