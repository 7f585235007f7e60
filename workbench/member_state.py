"""A member as of a moment or a version: the licences held and the limits in play, as frames
and as one readable HTML view (what the time-travel control shows)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from downloads import Catalogue, Downloaded, DownloadService, MemberAccount, RuleSet

from .render import table_html

LICENSE_COLUMNS = ["license_id", "title_id", "device_id", "acquired_at", "expires_at", "renewals", "expired"]
LIMIT_COLUMNS = ["rule", "scope", "used", "limit", "free_again_at"]
EXPIRED_NOTE = (
    "An expired licence's viewing window has ended, but the download is still on the device: "
    "it keeps its device slot (and its studio count) until the member deletes it or renews it."
)


def limits_frame(member: MemberAccount, rules: RuleSet, catalogue: Catalogue, at: datetime) -> pd.DataFrame:
    """How close the member is to each limit at ``at``: one row per rule and scope (the plan,
    a device, a studio, a title), with what is used, the limit, and for the per-title limit
    when the oldest counted download stops counting."""
    state = member.state
    rows: list[dict[str, Any]] = []
    if state.plan is not None:
        holding = sum(1 for device in state.devices.values() if device.held)
        rows.append(
            {"rule": "devices_per_plan", "scope": f"plan {state.plan}", "used": holding,
             "limit": rules.device_limit(state.plan)}
        )  # fmt: skip
    for device_id, device in sorted(state.devices.items()):
        if device.held:
            rows.append(
                {"rule": "downloads_per_device", "scope": device_id, "used": device.held,
                 "limit": rules.limits.downloads_per_device}
            )  # fmt: skip
    for studio_id, active in sorted(state.studio_active.items()):
        rows.append(
            {
                "rule": "studio_active_downloads",
                "scope": studio_id,
                "used": active,
                "limit": rules.studio_cap(studio_id),
            }
        )
    for title_id, downloaded in sorted(state.titles.items()):
        limit = rules.title_limit(downloaded.studio_id, title_id)
        if limit is None:
            continue
        entity = Downloaded(downloaded)
        used = len(entity.counted(at, rules.window, include_renewals=rules.renewal_counts))
        if used:
            rows.append(
                {
                    "rule": "title_downloads_per_year",
                    "scope": title_id,
                    "used": used,
                    "limit": limit,
                    "free_again_at": entity.free_again_at(
                        at, rules.window, limit, include_renewals=rules.renewal_counts
                    ),
                }
            )
    frame = pd.DataFrame(rows, columns=LIMIT_COLUMNS)
    frame["at_limit"] = frame["used"] >= frame["limit"]
    return frame


def licenses_frame(member: MemberAccount, at: datetime) -> pd.DataFrame:
    """The licences the member holds, one row each, with ``expired``: whether the viewing
    window had ended by ``at`` (an expired licence is still held: see :data:`EXPIRED_NOTE`)."""
    rows = [
        {
            "license_id": lic.license_id,
            "title_id": lic.title_id,
            "device_id": lic.device_id,
            "acquired_at": lic.acquired_at,
            "expires_at": lic.expires_at,
            "renewals": lic.renewals,
            "expired": lic.expires_at <= at,
        }
        for lic in member.state.licenses.values()
    ]
    frame = pd.DataFrame(rows, columns=LICENSE_COLUMNS)
    for column in ("acquired_at", "expires_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


@dataclass
class MemberAt:
    """A member as of a moment (or a version): the aggregate, its licences and its limits, and
    ``at``, the moment the limits and expiries were read at."""

    member: MemberAccount
    moment: datetime | None
    version: int
    licenses: pd.DataFrame
    limits: pd.DataFrame
    at: datetime | None = None

    def heading(self) -> str:
        plan = self.member.state.plan or "not subscribed"
        if self.moment is not None:
            return f"{self.member.id} as of {self.moment:%Y-%m-%d %H:%M:%S} UTC: version {self.version}, plan {plan}"
        recorded = f", recorded {self.at:%Y-%m-%d %H:%M:%S} UTC" if self.version and self.at else ""
        return f"{self.member.id} at version {self.version}{recorded}: plan {plan}"

    def body_html(self) -> str:
        """The licences and limits tables, without the heading."""
        expired = int(self.licenses["expired"].sum()) if "expired" in self.licenses else 0
        note = f'<p style="margin: 4px 0; opacity: 0.8"><small>{html.escape(EXPIRED_NOTE)}</small></p>'
        held = f"Licences held ({len(self.licenses)}{f', {expired} expired' if expired else ''})"
        section = 'style="margin: 10px 0 2px 0; font-weight: 600"'
        return (
            f"<div {section}>{held}</div>{table_html(self.licenses, empty='no licences held')}"
            f"{note if expired else ''}"
            f"<div {section}>Limits in play</div>{table_html(self.limits, empty='no limits in play')}"
        )

    def _repr_html_(self) -> str:
        heading = f'<div style="font-size: 1.1em; font-weight: 600; margin: 2px 0">{html.escape(self.heading())}</div>'
        return f'<div class="es-member-at">{heading}{self.body_html()}</div>'


def state_at(
    service: DownloadService,
    member_id: str,
    moment: datetime | None = None,
    *,
    version: int | None = None,
) -> MemberAt:
    """The member rebuilt from their events as recorded by ``moment`` (or after ``version``
    events), with licences and limits as they stood then. The time-travel control calls this."""
    member = (
        service.member(member_id, known_by=moment) if version is None else service.member(member_id, at_version=version)
    )
    at = moment
    if at is None:  # at a version: the limits are read at that version's time
        records = service.store.read_stream(member.stream_id, upto=version, reverse=True, limit=1)
        at = records[0].recorded_at if records else datetime.now().astimezone()
    return MemberAt(
        member=member,
        moment=moment,
        version=member.version,
        licenses=licenses_frame(member, at),
        limits=limits_frame(member, service.rules, service.catalogue, at),
        at=at,
    )
