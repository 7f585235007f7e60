"""Explaining a state: the timeline of events that led a member to where they are, and for a
denial, the earlier events that made its limit bind.

Because every event names its licence or title, one licence's or one title's history is a
filter over the member's stream. Every decision names the rule set that judged it, so a denial
is explained with the limits in force when it was decided, not with today's file: its causes
are read with the rule set whose content hash the denial recorded, found among the rule sets
given and the shipped rule files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from es_core import DomainEvent, EventRegistry, EventStore

from .events import (
    DECISIONS,
    DeviceRegistered,
    DeviceRemoved,
    DownloadDenied,
    LicenseAcquired,
    LicenseExpired,
    LicensePlayed,
    LicenseReleased,
    LicenseRenewed,
    MembershipCancelled,
    MemberSubscribed,
    PlanChanged,
    new_registry,
    rules_label,
)
from .member import MemberAccount
from .policy import when
from .rules import (
    DEFAULT_RULES_PATH,
    DEVICES_PER_PLAN,
    DOWNLOADS_PER_DEVICE,
    STUDIO_ACTIVE_DOWNLOADS,
    STUDIO_DOWNLOADS_PER_YEAR,
    TITLE_DOWNLOADS_PER_YEAR,
    RuleSet,
    load_rules,
)


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event: ``at`` when the member acted (business time), ``recorded_at`` when the
    store wrote it; ``rules``: the rule set that judged a decision ("name@digest")."""

    version: int
    recorded_at: datetime
    event_type: str
    aggregate_id: str  # the licence, device or "member" the event belongs to
    title_id: str | None
    summary: str
    request_id: str | None = None
    at: datetime | None = None
    rules: str | None = None

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = msgspec.to_builtins(self)
        return plain


@dataclass(frozen=True)
class DenialExplanation:
    """A denial and its causes. ``rules``: the rule set that judged it ("name@digest", "" if
    recorded before decisions named their rules); ``causes_read_with``: the rule set whose
    window and renewal rule picked the causes (the same one when it was at hand)."""

    denial: TimelineEntry
    rule: str
    limit: int | None
    retry_at: datetime | None
    reason: str
    causes: list[TimelineEntry] = field(default_factory=list)
    rules: str = ""
    causes_read_with: str = ""

    @property
    def text(self) -> str:
        judged = self.rules or "a rule set recorded before decisions named theirs"
        lines = [f"{self.denial.summary}", f"because: {self.reason}", f"judged under {judged} (limit {self.limit})"]
        if self.causes_read_with != self.rules:
            lines.append(f"causes read with {self.causes_read_with}, as that rule set is not at hand")
        lines += [f"  v{c.version} {c.summary}" for c in self.causes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "denial": self.denial.as_dict(), "rule": self.rule, "limit": self.limit,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None, "reason": self.reason,
            "rules": self.rules, "causes_read_with": self.causes_read_with,
            "causes": [c.as_dict() for c in self.causes],
        }


def timeline(
    store: EventStore,
    member_id: str,
    *,
    aggregate_id: str | None = None,
    upto_version: int | None = None,
    registry: EventRegistry | None = None,
) -> list[TimelineEntry]:
    """The member's events in order, as one-line summaries; ``aggregate_id`` keeps only those
    of one licence, title or device."""
    registry = registry or new_registry()
    entries = []
    for item in registry.decode_all(store.read_stream(MemberAccount.stream_id_for(member_id), upto=upto_version)):
        record = item.record
        entry = _entry(record.version, record.recorded_at, item.event, record.metadata.get("request_id"))
        if aggregate_id is None or aggregate_id in (entry.aggregate_id, entry.title_id):
            entries.append(entry)
    return entries


def explain_denial(
    store: EventStore,
    member_id: str,
    request_id: str,
    *,
    rules: RuleSet | Iterable[RuleSet] | None = None,
    registry: EventRegistry | None = None,
) -> DenialExplanation:
    """The denial of ``request_id`` and the events before it that made its rule bind, read
    with the rule set that judged it: the one among ``rules`` and the shipped rule files
    whose content hash the denial recorded (else ``rules``, or the default file)."""
    registry = registry or new_registry()
    held: dict[str, tuple[LicenseAcquired, TimelineEntry]] = {}
    downloads: list[tuple[str, str, datetime, bool, TimelineEntry]] = []  # title, studio, decided at, renewal, entry
    studios: dict[str, str] = {}  # licence -> studio
    plan: TimelineEntry | None = None
    for record in store.read_stream(MemberAccount.stream_id_for(member_id)):
        for event in registry.decode(record):
            entry = _entry(record.version, record.recorded_at, event, record.metadata.get("request_id"))
            if isinstance(event, DownloadDenied) and event.request_id == request_id:
                in_force = _rules_in_force(event, rules)
                causes = _causes(event, held, downloads, plan, in_force)
                return DenialExplanation(
                    entry, event.rule, event.limit, event.retry_at, event.reason, causes,
                    rules=rules_label(event), causes_read_with=in_force.label,
                )
            if isinstance(event, LicenseAcquired):
                held[event.license_id] = (event, entry)
                studios[event.license_id] = event.studio_id
                downloads.append((event.title_id, event.studio_id, event.decided_at, False, entry))
            elif isinstance(event, LicenseRenewed):
                studio = studios.get(event.license_id, "")
                downloads.append((event.title_id, studio, event.decided_at, True, entry))
            elif isinstance(event, LicenseReleased | LicenseExpired):
                held.pop(event.license_id, None)
            elif isinstance(event, MemberSubscribed | PlanChanged):
                plan = entry
    raise LookupError(f"member {member_id} has no denial for request {request_id}")


def _rules_in_force(denial: DownloadDenied, given: RuleSet | Iterable[RuleSet] | None) -> RuleSet:
    """The rule set that judged ``denial``, if it is among ``given`` or the shipped files."""
    candidates = [given] if isinstance(given, RuleSet) else list(given or [])
    fallback = candidates[0] if candidates else None
    for rules in candidates:
        if denial.rules_digest and rules.digest == denial.rules_digest:
            return rules
    if denial.rules_digest:
        for path in sorted(DEFAULT_RULES_PATH.parent.glob("*.toml")):
            shipped = load_rules(path)
            if shipped.digest == denial.rules_digest:
                return shipped
    return fallback or load_rules()


def _causes(
    denial: DownloadDenied,
    held: dict[str, tuple[LicenseAcquired, TimelineEntry]],
    downloads: list[tuple[str, str, datetime, bool, TimelineEntry]],
    plan: TimelineEntry | None,
    rules: RuleSet,
) -> list[TimelineEntry]:
    since = denial.decided_at - rules.window
    counted = [
        (title, studio, e) for title, studio, at, renewal, e in downloads
        if since < at <= denial.decided_at and (rules.renewal_counts or not renewal)
    ]
    if denial.rule == TITLE_DOWNLOADS_PER_YEAR:
        return [e for title, _, e in counted if title == denial.title_id]
    if denial.rule == STUDIO_DOWNLOADS_PER_YEAR:
        return [e for _, studio, e in counted if studio == denial.studio_id]
    if denial.rule == DEVICES_PER_PLAN:
        others = [e for acquired, e in held.values() if acquired.device_id != denial.device_id]
        return ([plan] if plan else []) + others
    if denial.rule == DOWNLOADS_PER_DEVICE:
        return [e for acquired, e in held.values() if acquired.device_id == denial.device_id]
    if denial.rule == STUDIO_ACTIVE_DOWNLOADS:
        return [e for acquired, e in held.values() if acquired.studio_id == denial.studio_id]
    return []  # CATALOGUE: the catalogue's dates, not the member's history


def _entry(version: int, recorded_at: datetime, e: DomainEvent, request_id: str | None) -> TimelineEntry:
    aggregate, title, summary = _describe(e)
    judged = rules_label(e) if isinstance(e, DECISIONS) else ""
    return TimelineEntry(
        version=version, recorded_at=recorded_at, event_type=type(e).event_type, aggregate_id=aggregate,
        title_id=title, summary=summary, request_id=request_id, at=getattr(e, "at", None), rules=judged or None,
    )


def _describe(e: DomainEvent) -> tuple[str, str | None, str]:
    """(aggregate id, title id, one-line summary) of an event."""
    if isinstance(e, LicenseAcquired):
        return e.license_id, e.title_id, (
            f"{when(e.at)} downloaded {e.title_id} on {e.device_id} ({e.license_id}, until {when(e.expires_at)})"
        )
    if isinstance(e, LicenseRenewed):
        return e.license_id, e.title_id, f"{when(e.at)} renewed {e.license_id} ({e.title_id}) to {when(e.expires_at)}"
    if isinstance(e, LicensePlayed):
        return e.license_id, e.title_id, f"{when(e.at)} first play of {e.license_id}, now until {when(e.expires_at)}"
    if isinstance(e, LicenseReleased):
        return e.license_id, e.title_id, f"{when(e.at)} released {e.license_id} ({e.title_id}): {e.reason}"
    if isinstance(e, LicenseExpired):
        return e.license_id, e.title_id, f"{when(e.at)} expired {e.license_id} ({e.title_id}): {e.reason}"
    if isinstance(e, DownloadDenied):
        return e.license_id or e.device_id, e.title_id, (
            f"{when(e.at)} denied {e.action} of {e.title_id} on {e.device_id} by {e.rule} (limit {e.limit})"
        )
    if isinstance(e, DeviceRegistered):
        return e.device_id, None, f"{when(e.at)} registered device {e.device_id} ({e.kind or 'device'})"
    if isinstance(e, DeviceRemoved):
        return e.device_id, None, f"{when(e.at)} removed device {e.device_id}"
    if isinstance(e, MemberSubscribed):
        return "member", None, f"{when(e.at)} subscribed on the {e.plan} plan"
    if isinstance(e, PlanChanged):
        return "member", None, (
            f"{when(e.at)} plan {e.old_plan} -> {e.new_plan} ({e.devices_holding_downloads} devices holding downloads,"
            f" limit {e.device_limit})"
        )
    if isinstance(e, MembershipCancelled):
        return "member", None, f"{when(e.at)} cancelled membership"
    return "member", None, type(e).event_type
