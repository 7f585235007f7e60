"""The rule checks a download or renewal must pass, in the order a denial names the first that
binds: catalogue, devices per plan, downloads per device, studio cap, studio per rolling year,
title per rolling year.

Each check reads the member's state and returns a denied ``Answer`` (rule, limit, when to try
again, and the member-facing reason) or None. Windows are measured in service time (``now``,
the service's clock when it decides), never in the client's: a client's clock cannot move a
window. The catalogue is checked at both times: a title must be available when the member says
they asked and when the service decides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .answers import Answer, denied
from .catalogue import Title
from .downloaded import Downloaded
from .rules import (
    CATALOGUE,
    DEVICES_PER_PLAN,
    DOWNLOADS_PER_DEVICE,
    STUDIO_ACTIVE_DOWNLOADS,
    STUDIO_DOWNLOADS_PER_YEAR,
    TITLE_DOWNLOADS_PER_YEAR,
    RuleSet,
)

if TYPE_CHECKING:
    from .member import MemberState


def when(moment: datetime) -> str:
    """How times read in reasons: UTC to the minute."""
    m = moment.astimezone(UTC) if moment.tzinfo is not UTC else moment
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d} {m.hour:02d}:{m.minute:02d} UTC"


def times(n: int) -> str:
    return "1 time" if n == 1 else f"{n} times"


def check_catalogue(title: Title, at: datetime, now: datetime) -> Answer | None:
    """Available at the request's time ``at`` and at the service's ``now``."""
    if title.available_from is not None and min(at, now) < title.available_from:
        return denied(
            CATALOGUE,
            f"'{title.name}' is not in the catalogue yet; it can be downloaded from {when(title.available_from)}",
            retry_at=title.available_from,
        )
    if title.leaving_on is not None and max(at, now) >= title.leaving_on:
        return denied(CATALOGUE, f"'{title.name}' left the catalogue on {when(title.leaving_on)}")
    return None


def check_devices(state: MemberState, device_id: str, rules: RuleSet) -> Answer | None:
    """A download may not make more devices hold downloads than the plan allows. After a
    downgrade the member may be over the limit: downloads stay, but new ones wait."""
    assert state.plan is not None
    limit = rules.device_limit(state.plan)
    holding = [d for d, device in state.devices.items() if device.held]
    after = len(holding) + (0 if device_id in holding else 1)
    if after <= limit:
        return None
    clear = after - limit
    devices = "1 device" if limit == 1 else f"{limit} devices"
    return denied(
        DEVICES_PER_PLAN,
        f"the {state.plan} plan allows downloads on {devices} and {len(holding)} hold downloads; "
        f"delete the downloads on {clear} other device{'s' if clear > 1 else ''} first",
        limit=limit,
    )


def check_device_capacity(state: MemberState, device_id: str, rules: RuleSet) -> Answer | None:
    limit = rules.limits.downloads_per_device
    if state.devices[device_id].held < limit:
        return None
    return denied(
        DOWNLOADS_PER_DEVICE,
        f"this device holds {limit} downloads, the most one device may hold; delete one first",
        limit=limit,
    )


def check_studio_cap(state: MemberState, title: Title, studio_name: str, rules: RuleSet) -> Answer | None:
    limit = rules.studio_cap(title.studio_id)
    if state.studio_active.get(title.studio_id, 0) < limit:
        return None
    return denied(
        STUDIO_ACTIVE_DOWNLOADS,
        f"{studio_name} allows {limit} downloads at a time; delete one of its downloads first",
        limit=limit,
    )


def check_studio_year(
    state: MemberState, title: Title, studio_name: str, now: datetime, rules: RuleSet
) -> Answer | None:
    """Downloads of all the studio's titles together in the rolling window (renewals count
    when they count toward a title's limit)."""
    limit = rules.studio_year_limit(title.studio_id)
    if limit is None:
        return None
    studio = [d for d in state.titles.values() if d.studio_id == title.studio_id]
    again = Downloaded.free_again_among(studio, now, rules.window, limit, include_renewals=rules.renewal_counts)
    if again is None:
        return None
    return denied(
        STUDIO_DOWNLOADS_PER_YEAR,
        f"{studio_name}'s titles can be downloaded {times(limit)} a year in all; the next from {when(again)}",
        limit=limit,
        retry_at=again,
    )


def check_title_year(
    downloaded: Downloaded | None, title: Title, now: datetime, rules: RuleSet
) -> Answer | None:
    """Downloads decided later than ``now`` count too (``Downloaded.counted``): a command
    decided in the service's past (a reconciled provisional grant) must not take a window
    holding them over the limit."""
    limit = rules.title_limit(title.studio_id, title.id)
    if limit is None or downloaded is None:
        return None
    again = downloaded.free_again_at(now, rules.window, limit, include_renewals=rules.renewal_counts)
    if again is None:
        return None
    return denied(
        TITLE_DOWNLOADS_PER_YEAR,
        f"'{title.name}' can be downloaded {times(limit)} a year; it can be downloaded again from {when(again)}",
        limit=limit,
        retry_at=again,
    )


def remaining_after(
    downloaded: Downloaded | None, title: Title, now: datetime, rules: RuleSet, *, renewal: bool = False
) -> tuple[int | None, datetime | None]:
    """What to tell the member after a granted download or renewal: downloads left, and when
    the oldest counted one stops counting. (None, None) when the title has no yearly limit."""
    limit = rules.title_limit(title.studio_id, title.id)
    if limit is None:
        return None, None
    counts = rules.renewal_counts or not renewal
    if downloaded is None:
        return (limit - 1, now + rules.window) if counts else (limit, None)
    return downloaded.outlook(now, rules.window, limit, include_renewals=rules.renewal_counts, adding=counts)
