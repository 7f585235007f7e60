"""ipywidgets controls. Each callback is a thin wrapper over a plain function (``state_at``),
which cells call directly too, so a headless run (CI) exercises the same code a reader drags.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ipywidgets as widgets
import pandas as pd

from downloads import Catalogue, Downloaded, DownloadService, MemberAccount, RuleSet

from .frames import struct_frame
from .render import aggregate_html

LICENSE_COLUMNS = ["license_id", "title_id", "device_id", "acquired_at", "expires_at", "renewals", "expired"]
LIMIT_COLUMNS = ["rule", "scope", "used", "limit", "free_again_at"]


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


@dataclass
class MemberAt:
    """A member as of a moment (or a version): the aggregate, its licences and its limits."""

    member: MemberAccount
    moment: datetime | None
    version: int
    licenses: pd.DataFrame
    limits: pd.DataFrame

    def _repr_html_(self) -> str:
        when = f"as of {self.moment:%Y-%m-%d %H:%M} UTC" if self.moment else f"at version {self.version}"
        head = (
            f"<h4 style='margin: 4px 0'>{html.escape(self.member.id)} {when}: plan {self.member.state.plan}, "
            f"{len(self.licenses)} licence(s), version {self.version}</h4>"
        )
        licenses = self.licenses.to_html(index=False, border=0) if len(self.licenses) else "<i>no licences held</i>"
        limits = self.limits.to_html(index=False, border=0) if len(self.limits) else "<i>no limits in play</i>"
        return f"{head}<b>licences</b>{licenses}<b>limits</b>{limits}"


def state_at(
    service: DownloadService,
    member_id: str,
    moment: datetime | None = None,
    *,
    version: int | None = None,
) -> MemberAt:
    """The member rebuilt from their events as recorded by ``moment`` (or after ``version``
    events), with licences and limits as they stood then. The time-travel slider calls this."""
    member = (
        service.member(member_id, known_by=moment) if version is None else service.member(member_id, at_version=version)
    )
    licenses = struct_frame(member.state.licenses.values())
    licenses = licenses[[c for c in LICENSE_COLUMNS if c in licenses.columns]] if len(licenses) else licenses
    at = moment
    if at is None:  # at a version: the limits are read at that version's time
        records = service.store.read_stream(member.stream_id, upto=version, reverse=True, limit=1)
        at = records[0].recorded_at if records else datetime.now().astimezone()
    limits = limits_frame(member, service.rules, service.catalogue, at)
    return MemberAt(member=member, moment=moment, version=member.version, licenses=licenses, limits=limits)


class TimeTravel:
    """Two sliders over one member's history, "as of" a recorded moment and "at" a version,
    each redrawing the member's licences and limits (through :func:`state_at`)."""

    def __init__(self, service: DownloadService, member_id: str) -> None:
        self.service = service
        self.member_id = member_id
        records = service.store.read_stream(MemberAccount.stream_id_for(member_id))
        if not records:
            raise ValueError(f"member {member_id} has no events")
        self.moments = [r.recorded_at for r in records]
        options = [(f"{r.recorded_at:%Y-%m-%d %H:%M} (v{r.version} {r.event_type})", r.recorded_at) for r in records]
        layout = widgets.Layout(width="95%")
        self.time_slider = widgets.SelectionSlider(
            options=options, value=self.moments[-1], description="as of", continuous_update=False, layout=layout
        )
        self.version_slider = widgets.IntSlider(
            value=len(records),
            min=0,
            max=len(records),
            description="at version",
            continuous_update=False,
            layout=layout,
        )
        self.view = widgets.HTML()
        self.card = widgets.HTML()
        self.last: MemberAt | None = None
        self.time_slider.observe(self.on_time, names="value")
        self.version_slider.observe(self.on_version, names="value")
        self.show(self.moments[-1])

    def show(self, moment: datetime | None = None, *, version: int | None = None) -> MemberAt:
        """Redraw for a moment or a version; returns what is shown (cells assert on it)."""
        self.last = state_at(self.service, self.member_id, moment, version=version)
        self.view.value = self.last._repr_html_()
        self.card.value = aggregate_html(self.last.member)
        return self.last

    def on_time(self, change: dict[str, Any]) -> None:
        self.show(change["new"])

    def on_version(self, change: dict[str, Any]) -> None:
        self.show(version=change["new"])

    @property
    def widget(self) -> widgets.VBox:
        return widgets.VBox([self.time_slider, self.version_slider, self.view])


def time_travel(service: DownloadService, member_id: str) -> TimeTravel:
    """A :class:`TimeTravel` control for one member; display ``.widget``."""
    return TimeTravel(service, member_id)
