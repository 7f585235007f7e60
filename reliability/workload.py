"""The commands the scenarios send, and the check every scenario ends with: what the service
acknowledged against what the store holds, member by member.

Commands press on every limit at once: few members, few devices, titles whose studios cap
downloads per year (2-3) or at once, and a rule set (``race_rules.toml``) that also caps the
downloads one device may hold. Every command records an ``Ack``: what the caller was told.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from downloads import (
    AcquireLicense,
    Catalogue,
    Command,
    CommandRefusedError,
    DownloadService,
    InvalidCommandError,
    Outcome,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    RequestForgottenError,
    RuleSet,
    Subscribe,
    load_catalogue,
    load_rules,
    new_registry,
)
from es_core import EventStore, SnapshotPolicy, StoreUnavailableError

from .invariants import StreamCheck, check_member_stream, replay_matches
from .report import ScenarioResult

RULES_PATH = Path(__file__).resolve().parent / "race_rules.toml"
BASE_TIME = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)  # every title in the pool is in the catalogue then
TITLES = (
    "quiet-frontier",  # Northlight premiere: 2 a year
    "silver-island",  # Northlight: 3 a year
    "after-circuit",  # Meridian: 3 a year
    "after-crossing",  # Kestrel: 3 a year, 3 at once (race rules)
    "frontier-keeper",  # Kestrel
    "last-garden",  # Kestrel
    "hidden-harbours",  # Bluefern: no yearly limit
    "silver-harbour",  # Originals: no yearly limit
)
PLANS = ("basic", "standard", "standard", "premium")
DEVICES = ("phone", "tablet", "laptop", "tv", "car")
T = TypeVar("T")
SNAPSHOTS = SnapshotPolicy(every=5, keep=2)  # snapshot often, so loads mix snapshots and tails


def world() -> tuple[RuleSet, Catalogue]:
    rules, catalogue = load_rules(RULES_PATH), load_catalogue()
    rules.check_against(catalogue)
    return rules, catalogue


class ClientTime:
    """The scenarios' clients keep exact time: the service's clock reads the time of the
    command the calling thread is sending. (These scenarios are about crashes, races and
    retries; the clock bounds have their own tests in ``tests/unit/domain``.)"""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> datetime:
        moment: datetime = getattr(self._local, "at", BASE_TIME)
        return moment

    def follow(self, command: object) -> None:
        if isinstance(command, Command):
            self._local.at = command.at


CLIENT_TIME = ClientTime()


class ScenarioService(DownloadService):
    """A ``DownloadService`` on the clients' time (``CLIENT_TIME``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, clock=CLIENT_TIME, **kwargs)

    def handle(self, command: Command, *, accepted_at: datetime | None = None) -> Outcome:
        CLIENT_TIME.follow(command)
        return super().handle(command, accepted_at=accepted_at)


def service_for(
    store: EventStore, rules: RuleSet, catalogue: Catalogue, *, cache_size: int = 16, max_attempts: int = 3
) -> DownloadService:
    return ScenarioService(
        store, rules, catalogue, snapshot_policy=SNAPSHOTS, cache_size=cache_size, max_attempts=max_attempts
    )


@dataclass
class Ack:
    """What one submission of a command came to, as the client saw it."""

    request_id: str
    member_id: str
    command: str
    status: str  # granted | denied | refused | failed
    events: int = 0
    duplicate: bool = False
    rule: str | None = None
    license_id: str | None = None
    remaining: int | None = None
    retry_at: str | None = None
    reason: str = ""
    error: str = ""
    attempts: int = 1

    @classmethod
    def of(cls, command: Command, outcome: Outcome, attempts: int = 1) -> Ack:
        return cls(
            command.request_id,
            command.member_id,
            command.name,
            outcome.status,
            outcome.events,
            outcome.duplicate,
            outcome.rule,
            outcome.license_id,
            outcome.remaining,
            outcome.retry_at.isoformat() if outcome.retry_at else None,
            outcome.reason,
            attempts=attempts,
        )

    @classmethod
    def refused(cls, command: Command, exc: Exception, attempts: int = 1, *, failed: bool = False) -> Ack:
        return cls(
            command.request_id,
            command.member_id,
            command.name,
            "failed" if failed else "refused",
            error=type(exc).__name__,
            reason=str(exc),
            attempts=attempts,
        )

    @property
    def answered(self) -> bool:
        """An outcome came back (granted or denied): the service acknowledged the command."""
        return self.status in ("granted", "denied")

    def decision(self, *, reason: bool = True) -> tuple[Any, ...]:
        """What must be the same every time the request is answered (the member-facing reason
        text too, unless ``reason=False``)."""
        return (self.status, self.rule, self.license_id, self.remaining, self.retry_at) + (
            (self.reason,) if reason else ()
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def send(service: DownloadService, command: Command) -> Ack:
    """One submission: the outcome, or the error that refused it."""
    try:
        return Ack.of(command, service.handle(command))
    except (CommandRefusedError, InvalidCommandError, RequestForgottenError) as exc:
        return Ack.refused(command, exc)


def until_answered(call: Callable[[], T], *, attempts: int = 20) -> tuple[T, int]:
    """``call()``, called again while the store fails (an outcome unknown included), as a client
    of a replicated store must; with the number of calls. Safe only for calls that a repeat
    cannot apply twice: a command under the same request id (an attempt that landed is answered
    from the member's memory), forgetting a member, a read. The last failure propagates."""
    for attempt in range(1, attempts):
        try:
            return call(), attempt
        except StoreUnavailableError:
            time.sleep(min(0.05 * attempt, 1.0))  # a paxos round or a node restart, not a tight loop
    return call(), attempts


def send_until_answered(service: DownloadService, command: Command, *, attempts: int = 20) -> Ack:
    """``send`` through ``until_answered``; ``Ack.attempts`` counts the sends."""
    ack, sends = until_answered(lambda: send(service, command), attempts=attempts)
    ack.attempts = sends
    return ack


def subscribe_all(service: DownloadService, members: Iterable[str], tag: str) -> list[Ack]:
    """Each member joins (plans in turn: basic, standard, standard, premium) with two devices
    (a store failure retried: the set-up is not what a scenario tests)."""
    acks = []
    for k, member in enumerate(members):
        base = {"member_id": member, "at": BASE_TIME}
        acks.append(
            send_until_answered(service, Subscribe(**base, request_id=f"{tag}-join-{k}", plan=PLANS[k % len(PLANS)]))
        )
        for device in DEVICES[:2]:
            acks.append(
                send_until_answered(service, RegisterDevice(**base, request_id=f"{tag}-{device}-{k}", device_id=device))
            )
    return acks


@dataclass
class MemberView:
    """What one client knows of a member: the licences it was granted."""

    licenses: list[str] = field(default_factory=list)


def next_command(rng: random.Random, member: str, request_id: str, at: datetime, view: MemberView) -> Command:
    """A seeded command, weighted toward downloads so that limits bind."""
    roll = rng.random()
    base = {"member_id": member, "at": at, "request_id": request_id}
    if view.licenses and roll < 0.12:
        return ReleaseLicense(**base, license_id=view.licenses.pop(rng.randrange(len(view.licenses))))
    if view.licenses and roll < 0.22:
        return RenewLicense(**base, license_id=rng.choice(view.licenses))
    if view.licenses and roll < 0.26:
        return PlayDownload(**base, license_id=rng.choice(view.licenses))
    if roll < 0.36:
        return RegisterDevice(**base, device_id=rng.choice(DEVICES), kind="phone")
    if roll < 0.39:
        return RemoveDevice(**base, device_id=rng.choice(DEVICES))
    return AcquireLicense(**base, device_id=rng.choice(DEVICES), title_id=rng.choice(TITLES))


def learn(view: MemberView, command: Command, ack: Ack) -> None:
    if isinstance(command, AcquireLicense) and ack.status == "granted" and ack.license_id:
        if ack.license_id not in view.licenses:
            view.licenses.append(ack.license_id)


# -- the final check ---------------------------------------------------------------------

_GRANT_EVENTS = {"AcquireLicense": "LicenseAcquired", "RenewLicense": "LicenseRenewed"}


def verify_members(
    store: EventStore,
    members: Iterable[str],
    acks: list[Ack],
    rules: RuleSet,
    catalogue: Catalogue,
    result: ScenarioResult,
) -> dict[str, StreamCheck]:
    """Check every member's stream (shape, every limit at every version), then every
    acknowledgement against it, then the service's load against a serial replay. Problems are
    counted into ``result``; returns the per-member checks."""
    registry = new_registry()
    checks: dict[str, StreamCheck] = {}
    all_ids: Counter[object] = Counter()
    for member in members:
        check = checks[member] = check_member_stream(store, member, registry, rules, catalogue)
        for text in check.gaps:
            result.problem("lost", text)
        for text in check.duplicates:
            result.problem("duplicate", text)
        for category, text in check.violations:
            result.problem("violation", text, category)
        for records in check.types_by_request.values():
            all_ids.update(r.event_id for r in records)
    for event_id, n in all_ids.items():
        if n > 1:
            result.problem("duplicate", f"event id {event_id} stored {n} times across members")
    _match_acks(checks, acks, result)
    service = service_for(store, rules, catalogue, cache_size=0)
    for member, check in checks.items():
        assert check.replayed is not None
        differs = replay_matches(service.member(member), check.replayed)
        if differs:
            result.problem("violation", differs, "the service's load differs from the serial replay")
    return checks


def _match_acks(checks: dict[str, StreamCheck], acks: list[Ack], result: ScenarioResult) -> None:
    first: dict[tuple[str, str], Ack] = {}
    for ack in acks:
        key = (ack.member_id, ack.request_id)
        check = checks.get(ack.member_id)
        if check is None:
            continue
        stored = check.types_by_request.get(ack.request_id, [])
        if ack.answered and not ack.duplicate:
            if ack.events and not stored:
                result.problem("lost", f"{ack.request_id} ({ack.command}): {ack.events} events acknowledged, 0 stored")
            elif len(stored) != ack.events:
                kind = "duplicate" if len(stored) > ack.events else "lost"
                result.problem(kind, f"{ack.request_id}: {ack.events} events acknowledged, {len(stored)} stored")
            expected = _GRANT_EVENTS.get(ack.command)
            if expected and ack.events:
                types = {r.event_type for r in stored}
                told = "granted" if expected in types else "denied" if "DownloadDenied" in types else "neither"
                if told != ack.status:
                    result.problem("violation", f"{ack.request_id}: told {ack.status}, the store says {told}")
        if ack.answered or ack.status == "refused":
            # an answered request must be answered the same way every time; a refused one wrote
            # nothing and is decided afresh when sent again
            earlier = first.get(key)
            if earlier is None or not earlier.answered:
                first[key] = ack
            elif earlier.decision(reason=False) != ack.decision(reason=False):  # idempotency checks the text
                result.problem(
                    "violation",
                    f"{ack.request_id} ({ack.command}) answered {earlier.decision(reason=False)} "
                    f"then {ack.decision(reason=False)}",
                    "a request answered differently when sent again",
                )
    known = {(a.member_id, a.request_id) for a in acks}
    for member, check in checks.items():
        for request_id in check.types_by_request:
            if (member, request_id) not in known:
                result.problem("violation", f"member {member}: events of request {request_id!r}, which nobody sent")
