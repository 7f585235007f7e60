"""Fallback: the store fails under the Aggregate Service, which must follow its fallback policy
(``downloads.fallback``), then catch up when the store is back.

Three runs (``deny``; ``grant_provisionally`` with and without the circuit breaker), each on a
SQLite store wrapped in a ``FlakyStore`` that fails on demand:

1. healthy: members join, register devices, download (one member reaches a title's yearly limit);
2. a first outage: the store refuses every call (``unavailable``), then times out without writing
   (``timeout``); commands keep coming, a third of them re-sent by impatient clients. Recovery:
   the store heals, ``reconcile()`` replays the journalled grants, clients re-send what was
   denied with "try later";
3. a second outage in which the store writes but loses every reply (``timeout_after_write``),
   and its recovery; then a few more commands.

Checks: every command got an answer (no store error reached a client); a denial names
``store_unavailable`` and a retry time; nothing is written while the store is refusing; no member
ever holds more unconfirmed grants than the policy allows; the circuit breaker stops calling a
failing store; after reconciling nothing is pending, a confirmed grant is stored once, a grant the
rules now deny is revoked, a write that landed before its reply was lost is not written twice;
reconciling again does nothing; the journal reopens with nothing pending; and every member's
stream passes the same checks as the races (limits at every version, load == serial replay).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from downloads import AcquireLicense, Command, CommandRefusedError, InvalidCommandError, Outcome
from downloads.fallback import (
    DENY,
    GRANT_PROVISIONALLY,
    STORE_UNAVAILABLE,
    FallbackPolicy,
    FallbackService,
    ProvisionalJournal,
)
from es_core import EventSourcingError, SQLiteStore, open_store

from .faults import FlakyStore, Mode
from .report import ScenarioResult, timed
from .workload import (
    BASE_TIME,
    CLIENT_TIME,
    Ack,
    MemberView,
    learn,
    next_command,
    service_for,
    subscribe_all,
    verify_members,
    world,
)

OUTAGES: tuple[tuple[tuple[Mode, int], ...], ...] = (  # failure modes and the commands sent during each
    (("unavailable", 30), ("timeout", 16)),
    (("timeout_after_write", 24),),
)
RUNS = (  # policy mode, circuit breaker trips after (0: never, so every command meets the failing store)
    (DENY, 3),
    (GRANT_PROVISIONALLY, 3),
    (GRANT_PROVISIONALLY, 0),
)


class FakeClock:
    """The circuit breaker's clock, moved by the scenario instead of by waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_fallback(workdir: Path, *, seed: int, members: int = 6, cap: int = 1) -> ScenarioResult:
    result = ScenarioResult("fallback", "sqlite", fault_kind="store failures", ack_kind="answers")
    with timed(result):
        figures = {}
        for mode, trip in RUNS:
            figures[f"{mode}/trip{trip}"] = _run_mode(result, workdir, seed, mode, trip, members, cap)
        result.figures = figures
        deny = figures[f"{DENY}/trip3"]
        grants = [f for k, f in figures.items() if k.startswith(GRANT_PROVISIONALLY)]

        def total(key: str) -> int:
            return sum(f[key] for f in grants)

        result.summary = (
            f"deny: {deny['fallback_denials']} 'try later' answers, nothing written while refused; grant "
            f"provisionally: {total('provisional')} grants (<= {cap} unconfirmed per member) reconciled into "
            f"{total('confirmed')} confirmed ({total('landed_before_timeout')} had landed before a lost reply, none "
            f"written twice), {total('revoked')} revoked, {total('refused')} refused; the breaker spared "
            f"{sum(f['short_circuited'] for f in figures.values())} calls to the failing store"
            if not (result.lost or result.duplicates or result.violations)
            else "see problems below"
        )
    return result


def _run_mode(
    result: ScenarioResult, workdir: Path, seed: int, mode: str, trip: int, n_members: int, cap: int
) -> dict[str, int]:
    rules, catalogue = world()
    tag = f"fb{seed}-{mode[:5]}{trip}"
    members = [f"{tag}-m{k}" for k in range(n_members)]
    path = workdir / f"fallback-{mode}-{trip}.db"
    journal_path = workdir / f"fallback-{mode}-{trip}.journal"
    SQLiteStore.remove_files(path)
    journal_path.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    store = FlakyStore(open_store(f"sqlite:///{path.resolve()}"))
    clock = FakeClock()
    policy = FallbackPolicy(mode=mode, max_provisional_per_member=cap, trip_after_failures=trip, cool_down_seconds=5)
    service = service_for(store, rules, catalogue)
    fallback = FallbackService(service, policy, journal_path, clock=clock)
    rng = random.Random(f"{seed}:fallback:{mode}")
    views = {m: MemberView() for m in members}
    acks: list[Ack] = subscribe_all(service, members, tag)
    answers = 0
    n = 0

    def ask(command: Command) -> Outcome | None:
        nonlocal answers
        CLIENT_TIME.follow(command)  # the fallback reads the service's clock before the service does
        try:
            outcome = fallback.handle(command)
        except (CommandRefusedError, InvalidCommandError):
            return None  # the command itself was wrong: refused, as without a fallback
        except EventSourcingError as exc:
            result.problem("violation", f"{mode}: {command.request_id} reached the client as {type(exc).__name__}")
            return None
        answers += 1
        return outcome

    def next_at() -> tuple[str, object]:
        nonlocal n
        n += 1
        return f"{tag}-c{n}", BASE_TIME + timedelta(minutes=n)

    # 1. healthy, with one member at the yearly limit of a title (so a provisional 4th is revoked later)
    for _ in range(3):
        rid, at = next_at()
        limited = AcquireLicense(
            member_id=members[0], at=at, request_id=rid, device_id="phone", title_id="after-circuit"
        )
        outcome = ask(limited)
        if outcome is not None:
            acks.append(Ack.of(limited, outcome))
            learn(views[members[0]], limited, acks[-1])
    for _ in range(12):
        rid, at = next_at()
        member = rng.choice(members)
        command = next_command(rng, member, rid, at, views[member])
        outcome = ask(command)
        if outcome is not None:
            acks.append(Ack.of(command, outcome))
            learn(views[member], command, acks[-1])

    # 2. two outages, each followed by recovery
    totals = dict.fromkeys(("provisional", "denials", "confirmed", "revoked", "refused", "landed"), 0)
    for number, outage in enumerate(OUTAGES):
        sent = _outage(
            result, mode, store, fallback, policy, clock, outage, number, members, views, rng, ask, next_at, totals, cap
        )
        # recovery: reconcile, then clients re-send what was not settled ("try later")
        store.heal()
        clock.now += policy.cool_down_seconds + 0.1
        report = fallback.reconcile()
        again = fallback.reconcile()
        if again.confirmed or again.revoked or again.refused or again.pending:
            result.problem("duplicate", f"{mode}: a second reconcile() settled grants again")
        if not report.complete:
            result.problem("lost", f"{mode}: {report.pending} provisional grants pending after the store came back")
        if ProvisionalJournal(journal_path).pending():
            result.problem("lost", f"{mode}: the reopened journal still has pending grants")
        settled = {(o.member_id, o.request_id): o for o in report.confirmed + report.revoked}
        settled.update({(m, r): None for m, r, _ in report.refused})  # type: ignore[misc]
        totals["confirmed"] += len(report.confirmed)
        totals["revoked"] += len(report.revoked)
        totals["refused"] += len(report.refused)
        totals["landed"] += sum(1 for o in report.confirmed + report.revoked if o.duplicate)
        for command in sent:
            key = (command.member_id, command.request_id)
            if key in settled:
                if settled[key] is not None:
                    acks.append(Ack.of(command, settled[key]))  # type: ignore[arg-type]
                continue
            outcome = ask(command)
            if outcome is not None:
                if getattr(outcome, "fallback", ""):
                    result.problem("violation", f"{mode}: {command.request_id} still answered by the fallback")
                acks.append(Ack.of(command, outcome))
        if number == 0 and mode == GRANT_PROVISIONALLY and not report.revoked:
            result.problem("violation", f"{mode}: the 4th download of a 3-a-year title was not revoked")
    for _ in range(8):
        rid, at = next_at()
        member = rng.choice(members)
        command = next_command(rng, member, rid, at, views[member])
        outcome = ask(command)
        if outcome is not None:
            acks.append(Ack.of(command, outcome))
    result.faults += store.failures
    result.acknowledged += answers
    verify_members(store.inner, members, acks, rules, catalogue, result)
    store.close()
    return {
        "store_failures": store.failures,
        "fallback_denials": totals["denials"],
        "provisional": totals["provisional"],
        "confirmed": totals["confirmed"],
        "revoked": totals["revoked"],
        "refused": totals["refused"],
        "landed_before_timeout": totals["landed"],
        "short_circuited": fallback.stats.short_circuited,
        "answers": answers,
    }


def _outage(
    result: ScenarioResult,
    mode: str,
    store: FlakyStore,
    fallback: FallbackService,
    policy: FallbackPolicy,
    clock: FakeClock,
    outage: tuple[tuple[Mode, int], ...],
    number: int,
    members: list[str],
    views: dict[str, MemberView],
    rng: random.Random,
    ask: Callable[[Command], Outcome | None],
    next_at: Callable[[], tuple[str, Any]],
    totals: dict[str, int],
    cap: int,
) -> list[Command]:
    """Commands while the store fails as ``outage`` says; returns the commands answered."""
    sent: list[Command] = []
    calls_while_open = 0
    for fault, count in outage:
        store.fail(fault)
        head = store.inner.head_position()
        for k in range(count):
            rid, at = next_at()
            if number == 0 and k == 0:
                member = members[0]
                command: Command = AcquireLicense(
                    member_id=member, at=at, request_id=rid, device_id="phone", title_id="after-circuit"
                )  # a 4th: the rules will say no
            else:
                member = rng.choice(members)
                command = next_command(rng, member, rid, at, views[member])
            calls_before, was_open = store.calls, fallback.circuit_open
            outcome = ask(command)
            if was_open and store.calls != calls_before:
                calls_while_open += 1
            if outcome is None:
                continue
            sent.append(command)
            totals["provisional"] += _check_fallback_answer(result, mode, fallback, command, outcome, cap)
            totals["denials"] += outcome.rule == STORE_UNAVAILABLE
            if rng.random() < 0.33:  # an impatient client sends it again, still during the outage
                again = ask(command)
                from_fallback = again is not None and getattr(again, "fallback", "")
                if from_fallback and (again.granted, again.rule) != (outcome.granted, outcome.rule):  # type: ignore[union-attr]
                    result.problem(
                        "violation", f"{mode}: {command.request_id} re-sent during the outage was answered differently"
                    )
            if k % 4 == 3:
                clock.now += policy.cool_down_seconds + 0.1  # time passes: the breaker lets a probe through
        if fault != "timeout_after_write" and store.inner.head_position() != head:
            result.problem("violation", f"{mode}: events were written while the store refused ({fault})")
    if calls_while_open:
        result.problem("violation", f"{mode}: the store was called {calls_while_open} times while the circuit was open")
    return sent


def _check_fallback_answer(
    result: ScenarioResult, mode: str, fallback: FallbackService, command: Command, outcome: Outcome, cap: int
) -> int:
    """Check one answer given while the store was out; returns 1 for a provisional grant."""
    kind = getattr(outcome, "fallback", "")
    if not kind:
        return 0  # the service answered without writing (a command with nothing to record)
    if kind == "deny":
        if outcome.granted or outcome.rule != STORE_UNAVAILABLE or outcome.retry_at is None:
            result.problem("violation", f"{mode}: {command.request_id}: a fallback denial without rule or retry time")
        return 0
    if mode != GRANT_PROVISIONALLY or not outcome.granted:
        result.problem("violation", f"{mode}: {command.request_id}: a provisional answer under {mode}")
        return 0
    assert fallback.journal is not None
    held = len(fallback.journal.pending(command.member_id))
    if held > cap:
        result.problem("violation", f"{mode}: member {command.member_id} holds {held} unconfirmed grants (cap {cap})")
    return 1
