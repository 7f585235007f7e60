"""Checks over a member's stored stream, event by event: the business limits must hold at every
version, not only at the end, and the stream itself must be whole (contiguous versions, unique
event ids, each request's events written by one append).

The replay here is deliberately plain: ``MemberAccount.apply`` on every decoded event, in
version order, with no snapshot and no cache (a ``Repository`` always starts from the latest
snapshot, whatever its policy), so it is the serial replay that the service's own loads and
every stored snapshot are compared with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from downloads import (
    Catalogue,
    DownloadDenied,
    LicenseAcquired,
    LicenseRenewed,
    MemberAccount,
    PlanChanged,
    RuleSet,
)
from es_core import EventRegistry, EventStore, RecordedEvent

# kinds of violation, so a report counts each kind once rather than once per version
DEVICES = "more devices hold downloads than the plan allows"
PER_DEVICE = "a device holds more downloads than allowed"
STUDIO = "more active downloads of a studio than its cap"
TITLE_YEAR = "more downloads of a title within the rolling year than its limit"
STUDIO_YEAR = "more downloads of a studio's titles within the rolling year than its yearly count"
CATALOGUE = "a download outside the catalogue"
BOOKKEEPING = "held and studio counts disagree with the licences"
DENIAL = "a denial changed a count"
SNAPSHOT = "a stored snapshot differs from the replay at its version"


@dataclass
class StreamCheck:
    """What one member stream showed. ``violations`` break a business rule or the stream's
    shape; ``duplicates`` are events or requests stored twice; ``gaps`` are missing versions."""

    member_id: str
    events: int = 0
    violations: list[tuple[str, str]] = field(default_factory=list)  # (category, description)
    duplicates: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    requests: dict[str, list[int]] = field(default_factory=dict)  # request id -> versions
    types_by_request: dict[str, list[RecordedEvent]] = field(default_factory=dict)
    replayed: MemberAccount | None = None


def window_peak(times: Iterable[datetime], window: timedelta) -> int:
    """The most downloads counted at any moment: a download at ``t`` counts at ``at`` while
    ``at - window < t <= at``, so the peak is reached at one of the downloads themselves."""
    ordered = sorted(times)
    peak, start = 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def _counts(account: MemberAccount) -> tuple[int, int, int]:
    s = account.state
    return (
        sum(d.held for d in s.devices.values()),
        sum(s.studio_active.values()),
        sum(len(t.downloads) for t in s.titles.values()),
    )


class _Limits:
    """The limits as the rules state them, checked against the state after one event."""

    def __init__(self, rules: RuleSet, catalogue: Catalogue) -> None:
        self.rules = rules
        self.catalogue = catalogue
        self.grace = 0  # devices over the plan's limit left by a downgrade (they may only shrink)

    def check(self, account: MemberAccount, record: RecordedEvent, event: object, out: list[tuple[str, str]]) -> None:
        s, where = account.state, f"{account.stream_id} v{record.version} ({record.event_type})"
        holding = sum(1 for d in s.devices.values() if d.held)
        if isinstance(event, PlanChanged):
            self.grace = holding
        if s.plan is not None:
            limit = self.rules.device_limit(s.plan)
            if holding > max(limit, self.grace):
                out.append((DEVICES, f"{where}: {holding} devices hold downloads on the {s.plan} plan (limit {limit})"))
        self.grace = min(self.grace, holding)
        per_device = self.rules.limits.downloads_per_device
        for device_id, device in s.devices.items():
            if device.held > per_device:
                out.append(
                    (PER_DEVICE, f"{where}: device {device_id} holds {device.held} downloads (limit {per_device})")
                )
        for studio_id, active in s.studio_active.items():
            cap = self.rules.studio_cap(studio_id)
            if active > cap:
                out.append((STUDIO, f"{where}: {active} active downloads of studio {studio_id} (cap {cap})"))
        if isinstance(event, LicenseAcquired | LicenseRenewed):
            self._title(account, event, where, out)
        # bookkeeping the decisions rely on: held counts and studio counts match the licences
        by_device = Counter(lic.device_id for lic in s.licenses.values())
        if any(by_device.get(d, 0) != dev.held for d, dev in s.devices.items()):
            out.append((BOOKKEEPING, f"{where}: device held counts {dict(by_device)} disagree with the licences held"))
        by_studio = Counter(lic.studio_id for lic in s.licenses.values())
        if dict(by_studio) != {k: v for k, v in s.studio_active.items() if v}:
            out.append((BOOKKEEPING, f"{where}: studio counts {s.studio_active} disagree with the licences held"))

    def _title(
        self, account: MemberAccount, event: LicenseAcquired | LicenseRenewed, where: str, out: list[tuple[str, str]]
    ) -> None:
        state = account.state.titles.get(event.title_id)
        title = self.catalogue.title(event.title_id)
        if state is None or title is None:
            out.append(
                (CATALOGUE, f"{where}: a download of {event.title_id!r}, which the catalogue or member does not know")
            )
            return
        if not title.available_at(event.at):
            out.append(
                (CATALOGUE, f"{where}: {event.title_id} downloaded at {event.at:%Y-%m-%d %H:%M}, outside the catalogue")
            )
        self._studio_year(account, title.studio_id, where, out)
        limit = self.rules.title_limit(title.studio_id, title.id)
        if limit is None:
            return
        counted = [d.at for d in state.downloads if self.rules.renewal_counts or not d.renewal]
        peak = window_peak(counted, self.rules.window)
        if peak > limit:
            later = [at for at in counted if at > event.at]
            why = f"; stamped {event.at:%H:%M:%S.%f}, it was decided after {len(later)} stamped later" if later else ""
            out.append(
                (
                    TITLE_YEAR,
                    f"{where}: {peak} downloads of {event.title_id} within {self.rules.window.days} days "
                    f"(limit {limit}){why}",
                )
            )


    def _studio_year(self, account: MemberAccount, studio_id: str, where: str, out: list[tuple[str, str]]) -> None:
        """All the studio's titles together, in every window of the rule's length (service time)."""
        limit = self.rules.studio_year_limit(studio_id)
        if limit is None:
            return
        counted = [
            d.at
            for t in account.state.titles.values()
            if t.studio_id == studio_id
            for d in t.downloads
            if self.rules.renewal_counts or not d.renewal
        ]
        peak = window_peak(counted, self.rules.window)
        if peak > limit:
            out.append((STUDIO_YEAR, f"{where}: {peak} downloads of studio {studio_id}'s titles (limit {limit})"))


def check_member_stream(
    store: EventStore, member_id: str, registry: EventRegistry, rules: RuleSet, catalogue: Catalogue
) -> StreamCheck:
    """Replay the member's stream one event at a time, checking the stream and every limit."""
    account = MemberAccount(member_id)
    check = StreamCheck(member_id)
    limits = _Limits(rules, catalogue)
    records = store.read_stream(account.stream_id)
    check.events = len(records)
    snapshot_at = set(store.snapshot_versions(account.stream_id))
    replayed_at: dict[int, bytes] = {}
    seen_ids: set[object] = set()
    for expected, record in enumerate(records, start=1):
        if record.version != expected:
            check.gaps.append(f"{account.stream_id}: version {record.version} where {expected} was expected")
        if record.event_id in seen_ids:
            check.duplicates.append(f"{account.stream_id} v{record.version}: event id {record.event_id} twice")
        seen_ids.add(record.event_id)
        request_id = record.metadata.get("request_id", "")
        versions = check.requests.setdefault(request_id, [])
        if versions and versions[-1] != record.version - 1:
            # one request, one append: events of a request apart from each other mean it ran twice
            check.duplicates.append(f"{account.stream_id} v{record.version}: request {request_id} written again")
        versions.append(record.version)
        check.types_by_request.setdefault(request_id, []).append(record)
        for event in registry.decode(record):
            before = _counts(account)
            account.apply(event)
            if isinstance(event, DownloadDenied) and _counts(account) != before:
                check.violations.append((DENIAL, f"{account.stream_id} v{record.version}: a denial changed a count"))
            limits.check(account, record, event, check.violations)
        account.version = record.version
        if record.version in snapshot_at:
            replayed_at[record.version] = state_bytes(account)
    check.replayed = account
    for version in sorted(snapshot_at):
        snapshot = store.latest_snapshot(account.stream_id, upto=version)
        if snapshot is None or snapshot.version != version:
            continue
        usable = (snapshot.state_type, snapshot.state_schema_version) == (
            MemberAccount.aggregate_type,
            MemberAccount.state_schema_version,
        )
        if usable and snapshot.state != replayed_at.get(version):
            check.violations.append(
                (
                    SNAPSHOT,
                    f"{account.stream_id}: the snapshot at v{version} differs from the replay of its first "
                    f"{version} events",
                )
            )
    return check


def state_bytes(account: MemberAccount) -> bytes:
    return msgspec.json.encode(account.state)


def replay_matches(loaded: MemberAccount, replayed: MemberAccount) -> str:
    """Empty when the service's load (snapshot + tail, perhaps cached) equals the serial
    replay; otherwise what differs."""
    if (loaded.version, state_bytes(loaded)) != (replayed.version, state_bytes(replayed)):
        return f"member {loaded.id}: the service's load (v{loaded.version}) differs from the serial replay"
    return ""


def serial_replay(store: EventStore, member_id: str, registry: EventRegistry) -> MemberAccount:
    """The member from its events alone, first to last: no snapshot, no cache."""
    account = MemberAccount(member_id)
    for record in store.read_stream(account.stream_id):
        for event in registry.decode(record):
            account.apply(event)
        account.version = record.version
    return account
