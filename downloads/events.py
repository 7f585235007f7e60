"""The domain's events. All of a member's events live in one stream, ``member-<id>``; each names
the aggregate it belongs to (a ``license_id``, a ``title_id``), so a licence's or a title's own
history can be filtered out of the member's stream.

Events are facts, not rule outcomes: every download and renewal is recorded whatever the rules
say about counting it, so changing a rule never needs a data migration. Times are aware UTC.
Netflix's *Downloaded* aggregate (a title's download count) is built from ``LicenseAcquired``
and ``LicenseRenewed``: both name the title, so they are its history too.

Two times: ``at`` is when the member acted, as their device said (the business time, trusted
only within the rules' clock bounds), and ``decided_at`` on a decision (a grant, a first play,
a denial) is the service's clock when it decided. Windows, expiries and the history the limits
count run on ``decided_at``. A decision also names the rule set that judged it: ``rules`` (its
name) and ``rules_digest`` (a hash of its content, ``RuleSet.digest``).

Version 2 of ``LicenseAcquired``, ``LicenseRenewed``, ``LicensePlayed`` and ``DownloadDenied``
added ``decided_at``, ``rules`` and ``rules_digest``; version 1 payloads are upcast with
``decided_at = at`` (the service then trusted the client's time) and the rule set unknown ("").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from es_core import DomainEvent, EventRegistry

# -- the member ---------------------------------------------------------------------------


class MemberSubscribed(DomainEvent, frozen=True, kw_only=True, gc=False):
    event_type = "MemberSubscribed"
    plan: str
    at: datetime
    request_id: str = ""


class PlanChanged(DomainEvent, frozen=True, kw_only=True, gc=False):
    """``devices_holding_downloads`` over ``device_limit`` means a downgrade left the member over
    the limit: their downloads stay, new ones wait until enough devices are cleared."""

    event_type = "PlanChanged"
    old_plan: str
    new_plan: str
    device_limit: int
    devices_holding_downloads: int
    at: datetime
    request_id: str = ""


class MembershipCancelled(DomainEvent, frozen=True, kw_only=True, gc=False):
    event_type = "MembershipCancelled"
    at: datetime
    request_id: str = ""


class DeviceRegistered(DomainEvent, frozen=True, kw_only=True, gc=False):
    event_type = "DeviceRegistered"
    device_id: str
    kind: str = ""
    at: datetime
    request_id: str = ""


class DeviceRemoved(DomainEvent, frozen=True, kw_only=True, gc=False):
    event_type = "DeviceRemoved"
    device_id: str
    at: datetime
    request_id: str = ""


class DownloadDenied(DomainEvent, frozen=True, kw_only=True, gc=False):
    """A download or renewal a rule refused. Applying it changes no count: denied attempts
    never count toward a limit."""

    event_type = "DownloadDenied"
    schema_version = 2
    action: str  # "acquire" | "renew"
    rule: str
    limit: int | None = None
    retry_at: datetime | None = None
    reason: str
    device_id: str
    title_id: str
    studio_id: str
    license_id: str | None = None
    at: datetime
    decided_at: datetime
    rules: str = ""
    rules_digest: str = ""
    request_id: str = ""


# -- License (aggregate id: license_id) ----------------------------------------------------


class LicenseAcquired(DomainEvent, frozen=True, kw_only=True, gc=False):
    """A first download of the title: the licence starts, and the title's *Downloaded* count
    grows by one. ``remaining`` / ``resets_at``: what the member was told about the title's
    yearly limit (None when the title has none)."""

    event_type = "LicenseAcquired"
    schema_version = 2
    license_id: str
    device_id: str
    title_id: str
    studio_id: str
    at: datetime
    decided_at: datetime
    expires_at: datetime
    remaining: int | None = None
    resets_at: datetime | None = None
    rules: str = ""
    rules_digest: str = ""
    request_id: str = ""


class LicenseRenewed(DomainEvent, frozen=True, kw_only=True, gc=False):
    """A fresh viewing window from ``decided_at``; also a download of the title for
    *Downloaded* (whether it counts toward the yearly limit is a rule, decided when it is read)."""

    event_type = "LicenseRenewed"
    schema_version = 2
    license_id: str
    title_id: str
    at: datetime
    decided_at: datetime
    expires_at: datetime
    remaining: int | None = None
    resets_at: datetime | None = None
    rules: str = ""
    rules_digest: str = ""
    request_id: str = ""


class LicensePlayed(DomainEvent, frozen=True, kw_only=True, gc=False):
    """The first play of a download; ``expires_at`` is the expiry from then on (earlier than
    before when the title expires a fixed time after first play)."""

    event_type = "LicensePlayed"
    schema_version = 2
    license_id: str
    title_id: str
    at: datetime
    decided_at: datetime
    expires_at: datetime
    rules: str = ""
    rules_digest: str = ""
    request_id: str = ""


class LicenseExpired(DomainEvent, frozen=True, kw_only=True, gc=False):
    """The licence was ended by the catalogue (its title left): it frees its slots and cannot
    be renewed. (A viewing window running out is no event: a licence past ``expires_at`` is
    simply not playable until renewed.)"""

    event_type = "LicenseExpired"
    license_id: str
    title_id: str
    reason: str = "title_left_catalogue"
    at: datetime
    request_id: str = ""


class LicenseReleased(DomainEvent, frozen=True, kw_only=True, gc=False):
    """The licence ends and frees its slots. ``reason``: ``deleted`` (the member deleted the
    download), ``device_removed``, ``membership_cancelled``."""

    event_type = "LicenseReleased"
    license_id: str
    title_id: str
    reason: str
    at: datetime
    request_id: str = ""


EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    DeviceRegistered,
    DeviceRemoved,
    DownloadDenied,
    LicenseAcquired,
    LicenseExpired,
    LicensePlayed,
    LicenseReleased,
    LicenseRenewed,
    MemberSubscribed,
    MembershipCancelled,
    PlanChanged,
)

RELEASE_REASONS = ("deleted", "device_removed", "membership_cancelled")


Decision = DownloadDenied | LicenseAcquired | LicensePlayed | LicenseRenewed
"""The events that record a decision: each carries ``decided_at`` and the rule set that judged it."""
DECISIONS = (DownloadDenied, LicenseAcquired, LicensePlayed, LicenseRenewed)


def rules_label(event: Decision) -> str:
    """"name@digest" of the rule set that judged a decision ("" when it was recorded before
    decisions named their rules)."""
    return f"{event.rules}@{event.rules_digest}" if event.rules else ""


def _decided_when_asked(data: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2 of a decision: the service then judged at the client's time."""
    return {**data, "decided_at": data["at"]}


def new_registry(*, tolerant: bool = False) -> EventRegistry:
    """A registry of every downloads event, with the upcasters of their older versions
    (``tolerant``: skip and count event types it does not know, see ``EventRegistry``)."""
    registry = EventRegistry(*EVENT_TYPES, tolerant=tolerant)
    for cls in DECISIONS:
        registry.add_upcaster(cls.event_type, 1, _decided_when_asked)
    registry.validate()
    return registry
