"""The time-travel control: two sliders in sync ("as of" a recorded moment, "at" a version), the
member's timeline with a marker that follows them, and the member's licences and limits,
redrawn through :func:`state_at` on every move, so a headless run (CI) exercises the same code
a reader drags.

The timeline is one plotly figure shown in an ``ipywidgets.Output`` and redrawn with the marker
moved. (plotly's own ``FigureWidget``, which would move the marker without redrawing, drew an
empty plot in JupyterLab in this project's browser tests, even for a three-line example.)

The control keeps its own in-memory copy of the member's stream, made when it is built, so it
keeps working after the notebook closes its store (and never reads the store while a reader
drags). An error in a callback is shown in the control, not only in JupyterLab's log.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import ipywidgets as widgets

import downloads
from downloads import DownloadService, MemberAccount
from es_core import NO_SNAPSHOTS, MemoryStore

from .figures import member_timeline
from .frames import struct_frame
from .legacy import append_as_recorded
from .member_state import MemberAt, state_at
from .plotting import figure_bundle, figure_html

log = logging.getLogger(__name__)
MARKER = {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "line": {"dash": "dash", "color": "grey", "width": 2}}


def private_history(service: DownloadService, member_id: str) -> DownloadService:
    """A service over an in-memory copy of one member's stream: the same rules and catalogue,
    the same versions, event ids and recorded times, and no snapshots."""
    stream_id = MemberAccount.stream_id_for(member_id)
    records = service.store.read_stream(stream_id)
    if not records:
        raise ValueError(f"member {member_id} has no events")
    copy = MemoryStore()
    append_as_recorded(copy, records)
    return DownloadService(copy, service.rules, service.catalogue, snapshot_policy=NO_SNAPSHOTS)


class TimeTravel:
    """Two synchronised sliders, a timeline with a marker and the member's state; display the
    control itself (or ``.widget``). ``last`` is what is shown, ``error`` the last callback's
    failure (None when it drew)."""

    def __init__(self, service: DownloadService, member_id: str, *, title: str = "") -> None:
        self.member_id = member_id
        self.history = private_history(service, member_id)
        records = self.history.store.read_stream(MemberAccount.stream_id_for(member_id))
        self.moments = [r.recorded_at for r in records]
        self.before_first = self.moments[0] - timedelta(microseconds=1)
        distinct = sorted(set(self.moments))
        options = [(f"before v1 ({self.before_first:%Y-%m-%d})", self.before_first)]
        options += [(f"{m:%Y-%m-%d %H:%M:%S}", m) for m in distinct]
        layout = widgets.Layout(width="98%")
        style = {"description_width": "80px"}
        self.time_slider = widgets.SelectionSlider(
            options=options, value=distinct[-1], description="as of", readout=False,
            continuous_update=False, layout=layout, style=style,
        )  # fmt: skip
        self.version_slider = widgets.IntSlider(
            value=len(records), min=0, max=len(records), description="at version",
            continuous_update=False, layout=layout, style=style,
        )  # fmt: skip
        entries = struct_frame(downloads.timeline(self.history.store, member_id))
        self.figure = member_timeline(entries, title=title or f"Member {member_id}")
        self.figure.add_shape(x0=distinct[-1], x1=distinct[-1], **MARKER)
        self.chart = widgets.Output()
        self.heading = widgets.HTML()
        self.view = widgets.HTML()
        self.last: MemberAt | None = None
        self.error: str | None = None
        self._syncing = False
        self.time_slider.observe(self._on_time, names="value")
        self.version_slider.observe(self._on_version, names="value")
        self._widget = widgets.VBox([self.heading, self.time_slider, self.version_slider, self.chart, self.view])
        self._widget.add_class("es-time-travel")
        self._draw(state_at(self.history, member_id, version=len(records)), distinct[-1])

    # -- drawing ---------------------------------------------------------------------------

    def show(self, moment: datetime | None = None, *, version: int | None = None) -> MemberAt:
        """Redraw for a moment or a version; returns what is shown (cells assert on it)."""
        shown = state_at(self.history, self.member_id, moment, version=version)
        return self._draw(shown, moment if moment is not None else self.moment_of(shown.version))

    def _draw(self, shown: MemberAt, marker: datetime) -> MemberAt:
        self.figure.layout.shapes[0].update(x0=marker, x1=marker)
        self.chart.outputs = ({"output_type": "display_data", "data": figure_bundle(self.figure), "metadata": {}},)
        self.last = shown
        self.heading.value = self._heading_html(shown)
        self.view.value = f'<div class="es-member-at">{shown.body_html()}</div>'
        self.error = None
        return shown

    def moment_of(self, version: int) -> datetime:
        """The moment version ``version`` was recorded (version 0: just before the first)."""
        return self.moments[version - 1] if version else self.before_first

    def _heading_html(self, shown: MemberAt) -> str:
        """What is shown, in one line: the member, the version (of how many), the moment, the
        plan, and the latest event applied."""
        if shown.moment is not None:
            where = f"as of {shown.moment:%Y-%m-%d %H:%M:%S} UTC: version {shown.version} of {len(self.moments)}"
        else:
            where = f"at version {shown.version} of {len(self.moments)}"
            if shown.version:
                where += f", recorded {self.moment_of(shown.version):%Y-%m-%d %H:%M:%S} UTC"
        latest = ""
        if shown.version:
            record = self.history.store.read_stream(shown.member.stream_id, after=shown.version - 1, limit=1)[0]
            latest = f" · latest event v{record.version} {record.event_type}"
        plan = shown.member.state.plan or "not subscribed"
        return (
            f"<div><b>{html.escape(self.member_id)} {html.escape(where)}</b>"
            f'<span style="opacity: 0.75"> · plan {html.escape(plan)}{html.escape(latest)}</span></div>'
        )

    def _guarded(self, redraw: Callable[[], None]) -> None:
        """Run a callback; a failure is shown in the control (callbacks have no cell output)."""
        try:
            redraw()
        except Exception as exc:
            log.exception("time travel for %s failed", self.member_id)
            self.error = f"{type(exc).__name__}: {exc}"
            self.heading.value = (
                f'<div style="color: #b00020; font-weight: 600">Could not redraw: {html.escape(self.error)}</div>'
            )

    # -- callbacks: each slider moves the other, without redrawing twice -------------------

    def _on_time(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        moment = change["new"]

        def redraw() -> None:
            shown = self.show(moment)
            self._set_quietly(self.version_slider, shown.version)

        self._guarded(redraw)

    def _on_version(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        version = change["new"]

        def redraw() -> None:
            self.show(version=version)
            self._set_quietly(self.time_slider, self.moment_of(version))

        self._guarded(redraw)

    def _set_quietly(self, slider: widgets.Widget, value: Any) -> None:
        self._syncing = True
        try:
            slider.value = value
        finally:
            self._syncing = False

    # -- display -----------------------------------------------------------------------------

    @property
    def widget(self) -> widgets.VBox:
        return self._widget

    def static_html(self) -> str:
        """What the control shows now, as plain HTML (for exports, where widgets do not run)."""
        return self.heading.value + figure_html(self.figure) + self.view.value

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self._widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.static_html()
        return bundle


def time_travel(service: DownloadService, member_id: str, *, title: str = "") -> TimeTravel:
    """A :class:`TimeTravel` control for one member; display it."""
    return TimeTravel(service, member_id, title=title)
