"""The time-travel control: two sliders in sync ("as of" a recorded moment, "at" a version), a
timeline whose marker follows them (one plotly ``FigureWidget``: clicking an event moves the
sliders there), and the member's licences and limits, redrawn through :func:`state_at` on
every move, so a headless run (CI) exercises the same code a reader drags.

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
import plotly.graph_objects as go

import downloads
from downloads import DownloadService, MemberAccount
from es_core import NO_SNAPSHOTS, MemoryStore, NewEvent

from .figures import member_timeline
from .frames import struct_frame
from .member_state import MemberAt, state_at
from .plotting import figure_html
from .settings import ManualClock

log = logging.getLogger(__name__)
MARKER = {"type": "line", "yref": "paper", "y0": 0, "y1": 1, "line": {"dash": "dash", "color": "grey", "width": 2}}


def private_history(service: DownloadService, member_id: str) -> DownloadService:
    """A service over an in-memory copy of one member's stream: the same rules and catalogue,
    the same versions, event ids and recorded times, and no snapshots."""
    stream_id = MemberAccount.stream_id_for(member_id)
    records = service.store.read_stream(stream_id)
    if not records:
        raise ValueError(f"member {member_id} has no events")
    clock = ManualClock(records[0].recorded_at)
    copy = MemoryStore(clock=clock)
    for record in records:
        clock.set(record.recorded_at)
        event = NewEvent(
            event_type=record.event_type,
            data=record.data,
            schema_version=record.schema_version,
            event_id=record.event_id,
            metadata=record.metadata,
        )
        copy.append(stream_id, [event], record.version - 1)
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
        self.figure = go.FigureWidget(member_timeline(entries, title=title or f"Member {member_id}"))
        self.figure.add_shape(x0=distinct[-1], x1=distinct[-1], **MARKER)
        for trace in self.figure.data:
            trace.on_click(self._on_point)
        self.heading = widgets.HTML()
        self.view = widgets.HTML()
        self.last: MemberAt | None = None
        self.error: str | None = None
        self._syncing = False
        self.time_slider.observe(self._on_time, names="value")
        self.version_slider.observe(self._on_version, names="value")
        self._widget = widgets.VBox([self.heading, self.time_slider, self.version_slider, self.figure, self.view])
        self._widget.add_class("es-time-travel")
        self.show(version=len(records))

    # -- drawing ---------------------------------------------------------------------------

    def show(self, moment: datetime | None = None, *, version: int | None = None) -> MemberAt:
        """Redraw for a moment or a version; returns what is shown (cells assert on it)."""
        self.last = state_at(self.history, self.member_id, moment, version=version)
        marker = moment if moment is not None else self.moment_of(self.last.version)
        with self.figure.batch_update():
            self.figure.layout.shapes[0].update(x0=marker, x1=marker)
        self.heading.value = self._heading_html(self.last)
        self.view.value = self.last._repr_html_()
        self.error = None
        return self.last

    def moment_of(self, version: int) -> datetime:
        """The moment version ``version`` was recorded (version 0: just before the first)."""
        return self.moments[version - 1] if version else self.before_first

    def _heading_html(self, shown: MemberAt) -> str:
        event = ""
        if shown.version:
            record = self.history.store.read_stream(shown.member.stream_id, after=shown.version - 1, limit=1)[0]
            event = f" · latest event: v{record.version} {record.event_type}"
        return (
            f'<div style="font-weight: 600">{html.escape(shown.heading())}'
            f'<span style="font-weight: normal; opacity: 0.75"> of {len(self.moments)}{html.escape(event)}</span></div>'
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

    def _on_point(self, trace: Any, points: Any, _state: Any) -> None:
        """A click on an event of the timeline moves the version slider to it."""
        if points.point_inds:
            self.version_slider.value = int(trace.customdata[points.point_inds[0]])

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
        figure = go.Figure(self.figure)
        return self.heading.value + figure_html(figure) + self.view.value

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self._widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.static_html()
        return bundle


def time_travel(service: DownloadService, member_id: str, *, title: str = "") -> TimeTravel:
    """A :class:`TimeTravel` control for one member; display it."""
    return TimeTravel(service, member_id, title=title)
