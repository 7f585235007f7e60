"""What-if: replay a recorded history of requests under other rules, and say what changes.

Every command's payload travels in its events' metadata, so any recorded store holds its own
request history. ``whatif`` reads it, rebuilds each member's requests in the order they were
handled (one per request id: retries wrote nothing), replays them through a fresh service
with the other rules into a scratch store, and compares each request's outcome.

The replay runs on the recorded service clock: each request is decided at the service time it
was first decided at (its decision's ``decided_at``, else when it was recorded), and its own
``at`` is checked against that, as it was then. Every decision names the rule set that judged it,
so the report says what the history was recorded under and what it was replayed under.

Every rule is per member, so members replay independently: ``replay`` handles the members of
one split of the store (``EventStore.split``) into its own scratch store, and ``combine`` adds
the splits' parts into one report, listing changes in the order the log recorded them. The
single-process ``whatif`` is the one-split case of that path; ``downloads.scaleout`` runs the
splits on a Dask cluster and gets the same report.

What it cannot know: how members would have *reacted* to a different outcome. The requests
are replayed as recorded, so a download granted only under the new rules is never deleted
(nobody asked to), and a request about a licence that no longer exists is "not applicable".
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from es_core import EventStore, RecordedEvent, open_store

from .catalogue import Catalogue, load_catalogue
from .commands import Command, command_from_payload
from .errors import DownloadsError
from .events import DECISIONS, DownloadDenied, LicenseAcquired, LicenseRenewed, new_registry, rules_label
from .rules import RuleSet
from .service import DownloadService

GRANTED, DENIED, NOT_APPLICABLE = "granted", "denied", "not_applicable"
DOWNLOAD_COMMANDS = ("AcquireLicense", "RenewLicense")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    command: Command
    status: str  # granted | denied (downloads and renewals); granted for any other recorded command
    rule: str | None = None
    position: int = 0  # of the request's first event in the global log
    decided_at: datetime | None = None  # the service time it was decided at
    rules: str = ""  # the rule set that judged it, "name@digest" ("" when no event names one)


class Change(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    member_id: str
    command: str
    at: datetime
    before: str
    after: str
    rule_before: str | None = None
    rule_after: str | None = None
    reason_after: str = ""


class WhatIfReport(msgspec.Struct, kw_only=True):
    """``rules``: the rule set replayed under, ``rules_label`` its "name@digest";
    ``recorded_under``: the rule sets that judged the recorded decisions ("name@digest", or
    "unknown" for decisions recorded before decisions named their rules), with counts."""

    rules: str
    rules_label: str = ""
    recorded_under: dict[str, int] = {}
    requests: int = 0
    download_requests: int = 0
    granted_before: int = 0
    granted_after: int = 0
    denied_before: int = 0
    denied_after: int = 0
    newly_granted: int = 0
    newly_denied: int = 0
    rule_changed: int = 0  # denied both times, by a different rule
    not_applicable: dict[str, int] = {}  # by command: requests about things that no longer exist
    denials_by_rule: dict[str, dict[str, int]] = {}  # rule -> {"before": n, "after": n}
    by_member: dict[str, dict[str, int]] = {}  # members with changes -> counts
    changes: list[Change] = []
    changes_truncated: bool = False
    wall_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = msgspec.to_builtins(self)
        return plain


COUNTS = (
    "requests", "download_requests", "granted_before", "granted_after", "denied_before", "denied_after",
    "newly_granted", "newly_denied", "rule_changed",
)  # the report's counters: a combined report's are the sums of its parts'


class WhatIfPart(msgspec.Struct, kw_only=True):
    """What replaying one split found: its members' counts (``report``, whose ``changes`` are
    the first ``max_changes`` of the split's in log order) and the log positions of those
    changes, which order them among other splits' in ``combine``."""

    report: WhatIfReport
    positions: list[int] = []
    changes_found: int = 0


def recorded_requests(store: EventStore) -> Iterator[RecordedRequest]:
    """The requests a store recorded, in the order they were handled. One append holds all of
    a request's events and a retry appends nothing, so a request is one run of the log."""
    return requests_in(store.read_all())


def requests_in(records: Iterable[RecordedEvent]) -> Iterator[RecordedRequest]:
    """The requests recorded by ``records``: the global log, or a split's streams one after another."""
    registry = new_registry()
    key: tuple[str, str] | None = None
    payload: Any = None
    status, rule, position, decided_at, rules = GRANTED, None, 0, None, ""
    for record in records:
        request_id = record.metadata.get("request_id")
        command = record.metadata.get("command")
        if command is None or request_id is None:
            continue
        if (record.stream_id, request_id) != key:
            if key is not None:
                yield RecordedRequest(command_from_payload(payload), status, rule, position, decided_at, rules)
            key, payload, status, rule = (record.stream_id, request_id), command, GRANTED, None
            position, decided_at, rules = record.position, record.recorded_at, ""
        for event in registry.decode(record):
            if not isinstance(event, DECISIONS) or event.request_id != request_id:
                continue
            decided_at, rules = event.decided_at, rules_label(event)
            if isinstance(event, DownloadDenied):
                status, rule = DENIED, event.rule
            elif isinstance(event, LicenseAcquired | LicenseRenewed):
                status, rule = GRANTED, None
    if key is not None:
        yield RecordedRequest(command_from_payload(payload), status, rule, position, decided_at, rules)


def whatif(
    store: EventStore,
    rules: RuleSet,
    *,
    catalogue: Catalogue | None = None,
    scratch: EventStore | None = None,
    max_changes: int = 1000,
) -> WhatIfReport:
    """Replay ``store``'s requests under ``rules`` into ``scratch`` (default: a new memory
    store) and report the outcomes that change, per rule and per member."""
    started = time.perf_counter()
    (whole,) = store.split(1)
    part = replay(store.read_split(whole), rules, catalogue=catalogue, scratch=scratch, max_changes=max_changes)
    return combine([part], rules, max_changes=max_changes, started=started)


def replay(
    records: Iterable[RecordedEvent],
    rules: RuleSet,
    *,
    catalogue: Catalogue | None = None,
    scratch: EventStore | None = None,
    max_changes: int = 1000,
) -> WhatIfPart:
    """Replay the requests ``records`` hold (whole streams: a split, or the global log) under
    ``rules`` into ``scratch`` (default: a new memory store)."""
    scratch = scratch or open_store("memory://")
    now: list[datetime] = []
    scratch.clock = lambda: now[-1]  # the replay runs on the recorded service clock
    service = DownloadService(scratch, rules, catalogue or load_catalogue(), cache_size=10_000)
    report = WhatIfReport(rules=rules.name, rules_label=rules.label)
    recorded_under: Counter[str] = Counter()
    before_rules: Counter[str] = Counter()
    after_rules: Counter[str] = Counter()
    not_applicable: Counter[str] = Counter()
    members: dict[str, Counter[str]] = {}
    changes: list[tuple[int, Change]] = []
    found = 0
    for request in requests_in(records):
        command = request.command
        now[:] = [request.decided_at or command.at]
        report.requests += 1
        try:
            outcome = service.handle(command)
            after, rule_after, reason = (GRANTED if outcome.granted else DENIED), outcome.rule, outcome.reason
        except DownloadsError as exc:
            after, rule_after, reason = NOT_APPLICABLE, None, str(exc)
            not_applicable[command.name] += 1
        if command.name not in DOWNLOAD_COMMANDS:
            continue
        recorded_under[request.rules or "unknown"] += 1
        report.download_requests += 1
        kind = _tally(report, request.status, after, request.rule, rule_after, before_rules, after_rules)
        if kind != "same":
            members.setdefault(command.member_id, Counter())[kind] += 1
            found += 1
            change = Change(
                request_id=command.request_id, member_id=command.member_id, command=command.name,
                at=command.at, before=request.status, after=after, rule_before=request.rule,
                rule_after=rule_after, reason_after=reason,
            )
            changes.append((request.position, change))
            if len(changes) >= 2 * max_changes + 64:  # keep the earliest in the log, in bounded memory
                changes = heapq.nsmallest(max_changes, changes, key=_first)
    kept = heapq.nsmallest(max_changes, changes, key=_first)
    report.changes = [c for _, c in kept]
    report.recorded_under = dict(recorded_under)
    report.not_applicable = dict(not_applicable)
    report.denials_by_rule = {
        r: {"before": before_rules[r], "after": after_rules[r]} for r in set(before_rules) | set(after_rules)
    }
    report.by_member = {m: dict(c) for m, c in members.items()}
    return WhatIfPart(report=report, positions=[p for p, _ in kept], changes_found=found)


def combine(
    parts: Iterable[WhatIfPart], rules: RuleSet, *, max_changes: int = 1000, started: float | None = None
) -> WhatIfReport:
    """One report from the parts of every split of a store: counts added up, members merged,
    the first ``max_changes`` changes in log order. ``started``: a ``perf_counter`` reading
    to measure ``wall_seconds`` from."""
    report = WhatIfReport(rules=rules.name, rules_label=rules.label)
    recorded_under: Counter[str] = Counter()
    not_applicable: Counter[str] = Counter()
    denials: dict[str, Counter[str]] = {}
    members: dict[str, dict[str, int]] = {}
    changes: list[list[tuple[int, Change]]] = []
    found = 0
    for part in parts:
        r = part.report
        for name in COUNTS:
            setattr(report, name, getattr(report, name) + getattr(r, name))
        recorded_under.update(r.recorded_under)
        not_applicable.update(r.not_applicable)
        for rule, counts in r.denials_by_rule.items():
            denials.setdefault(rule, Counter()).update(counts)
        members.update(r.by_member)  # members live in one split each
        changes.append(list(zip(part.positions, r.changes, strict=True)))
        found += part.changes_found
    report.recorded_under = dict(sorted(recorded_under.items()))
    report.not_applicable = dict(sorted(not_applicable.items()))
    report.denials_by_rule = {
        rule: {"before": c["before"], "after": c["after"]} for rule, c in sorted(denials.items())
    }
    report.by_member = {m: dict(sorted(c.items())) for m, c in sorted(members.items())}
    report.changes = [c for _, c in heapq.merge(*changes, key=_first)][:max_changes]
    report.changes_truncated = found > max_changes
    if started is not None:
        report.wall_seconds = round(time.perf_counter() - started, 3)
    return report


def _first(item: tuple[int, Change]) -> int:
    return item[0]


def _tally(
    report: WhatIfReport, before: str, after: str, rule_before: str | None, rule_after: str | None,
    before_rules: Counter[str], after_rules: Counter[str],
) -> str:
    report.granted_before += before == GRANTED
    report.denied_before += before == DENIED
    report.granted_after += after == GRANTED
    report.denied_after += after == DENIED
    if rule_before:
        before_rules[rule_before] += 1
    if rule_after:
        after_rules[rule_after] += 1
    kind = _kind(before, after, rule_before, rule_after)
    if kind == "newly_granted":
        report.newly_granted += 1
    elif kind == "newly_denied":
        report.newly_denied += 1
    elif kind == "rule_changed":
        report.rule_changed += 1
    return kind


def _kind(before: str, after: str, rule_before: str | None, rule_after: str | None) -> str:
    if before == DENIED and after == GRANTED:
        return "newly_granted"
    if before == GRANTED and after == DENIED:
        return "newly_denied"
    if after == NOT_APPLICABLE:
        return "not_applicable"
    return "rule_changed" if rule_before != rule_after else "same"
