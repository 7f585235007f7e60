"""Plotly figures for the notebooks. Each function takes a DataFrame (from ``workbench.frames``
or the domain's read models) and returns a ``plotly.graph_objects.Figure``; nothing is shown
here, so a cell decides and a test can inspect the traces.

No renderer is configured: JupyterLab draws figures from the plotly mimetype, with no
internet access needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from .frames import census_frame

_HEIGHT = 380
OUTCOME_COLORS = {"granted": "#2a9d8f", "denied": "#e76f51"}


def _layout(fig: go.Figure, title: str, *, height: int = _HEIGHT, **kwargs: object) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 50, "b": 40}, **kwargs)
    return fig


def census_bars(census: Mapping[tuple[str, int], int] | pd.DataFrame, *, title: str = "Schema census") -> go.Figure:
    """Stored events per event type, one bar colour per schema version."""
    frame = census if isinstance(census, pd.DataFrame) else census_frame(census)
    fig = go.Figure()
    for version, group in frame.groupby("schema_version", sort=True):
        fig.add_bar(x=group["event_type"], y=group["count"], name=f"v{version}", text=group["count"])
    fig.update_layout(barmode="stack", xaxis_title="event type", yaxis_title="events", legend_title="schema version")
    return _layout(fig, title)


def census_comparison(
    before: Mapping[tuple[str, int], int],
    after: Mapping[tuple[str, int], int],
    *,
    labels: tuple[str, str] = ("before", "after"),
) -> go.Figure:
    """Two censuses side by side (e.g. the stored log, then what the code reads after upcasting)."""
    first, second = labels
    fig = go.Figure()
    for name, census in ((first, before), (second, after)):
        frame = census_frame(census)
        keys = frame["event_type"] + " v" + frame["schema_version"].astype(str)
        fig.add_bar(y=keys, x=frame["count"], name=name, orientation="h")
    fig.update_layout(barmode="group", xaxis_title="events", yaxis={"autorange": "reversed"})
    height = max(_HEIGHT, 26 * (len(before) + len(after)) + 120)
    return _layout(fig, "Schema census: " + f"{first} vs {second}", height=height)


def stream_timeline(
    frame: pd.DataFrame,
    *,
    time_column: str = "recorded_at",
    title: str = "Events over time",
    hover: Sequence[str] = (),
    marker_size: int = 11,
) -> go.Figure:
    """One marker per event, a row per event type, along ``time_column``."""
    if frame.empty:
        raise ValueError("no events to draw")
    fig = go.Figure()
    for event_type, group in frame.groupby("event_type", sort=True):
        fields = [c for c in hover if c in group.columns]
        text = group[fields].astype(str).agg(" · ".join, axis=1) if fields else None
        fig.add_scatter(
            x=group[time_column],
            y=[event_type] * len(group),
            mode="markers",
            name=str(event_type),
            text=text,
            customdata=group["version"] if "version" in group.columns else None,
            marker={"size": marker_size, "symbol": "diamond"},
            hovertemplate="%{x}<br>%{y} (version %{customdata})<br>%{text}<extra></extra>",
        )
    height = max(260, 34 * frame["event_type"].nunique() + 120)
    return _layout(fig, title, height=height, showlegend=False, xaxis_title=time_column)


def load_cost_chart(
    frame: pd.DataFrame, *, y: str = "ms_per_load", title: str = "Load cost as history grows"
) -> go.Figure:
    """Load time against history length, a line per ``variant`` (e.g. replay vs snapshot).

    ``frame`` columns: ``events`` (history length), ``variant``, and ``y``."""
    fig = go.Figure()
    for variant, group in frame.groupby("variant", sort=False):
        group = group.sort_values("events")
        fig.add_scatter(x=group["events"], y=group[y], mode="lines+markers", name=str(variant))
    return _layout(fig, title, xaxis_title="events in the stream", yaxis_title=y.replace("_", " "))


def counts_over_time(
    frame: pd.DataFrame,
    *,
    time_column: str,
    by: str,
    freq: str = "W",
    title: str = "Events over time",
    yaxis_title: str = "events",
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Counts per period (``freq``: pandas offset alias) with a line per value of ``by``."""
    if frame.empty:
        raise ValueError("nothing to count")
    times = pd.to_datetime(frame[time_column], utc=True).dt.tz_localize(None)
    counts = (
        frame.assign(_period=times.dt.to_period(freq).dt.start_time)
        .groupby(["_period", by], observed=True)
        .size()
        .unstack(fill_value=0)
    )
    fig = go.Figure()
    for column in counts.columns:
        line = {"color": colors[str(column)]} if colors and str(column) in colors else None
        fig.add_scatter(x=counts.index, y=counts[column], mode="lines", name=str(column), line=line)
    return _layout(fig, title, xaxis_title="period starting", yaxis_title=yaxis_title)


def bar_counts(series: pd.Series, *, title: str, xaxis_title: str = "", yaxis_title: str = "count") -> go.Figure:
    """A bar per index value of ``series`` (e.g. ``frame["rule"].value_counts()``)."""
    fig = go.Figure(go.Bar(x=[str(i) for i in series.index], y=series.to_numpy(), text=series.to_numpy()))
    return _layout(fig, title, xaxis_title=xaxis_title, yaxis_title=yaxis_title)


def grouped_bars(frame: pd.DataFrame, *, title: str, xaxis_title: str = "", yaxis_title: str = "count") -> go.Figure:
    """A group of bars per row of ``frame``, a bar colour per column (e.g. baseline vs variant)."""
    fig = go.Figure()
    for column in frame.columns:
        fig.add_bar(x=[str(i) for i in frame.index], y=frame[column].to_numpy(), name=str(column))
    fig.update_layout(barmode="group")
    return _layout(fig, title, xaxis_title=xaxis_title, yaxis_title=yaxis_title)


def trace_points(fig: go.Figure) -> int:
    """How many data points a figure's traces hold (cells assert a chart is not empty)."""
    total = 0
    for trace in fig.data:
        values = getattr(trace, "x", None)
        if values is None:
            values = getattr(trace, "y", None)
        total += len(values) if values is not None else 0
    return total


# -- the downloads domain ----------------------------------------------------------------------


def decisions_over_time(decisions: pd.DataFrame, *, freq: str = "W", title: str = "") -> go.Figure:
    """Granted and denied downloads (and renewals) per period, from ``decisions_frame``."""
    return counts_over_time(
        decisions,
        time_column="at",
        by="outcome",
        freq=freq,
        title=title or f"Download decisions per {'week' if freq == 'W' else freq}",
        yaxis_title="decisions",
        colors=OUTCOME_COLORS,
    )


def denials_by_rule(decisions: pd.DataFrame, *, title: str = "Denials by rule") -> go.Figure:
    """How many denials each rule caused, split by action (a download or a renewal)."""
    denied = decisions[decisions["outcome"] == "denied"]
    table = denied.groupby(["rule", "action"]).size().unstack(fill_value=0)
    fig = go.Figure()
    for action in table.columns:
        fig.add_bar(x=list(table.index), y=table[action].to_numpy(), name=str(action), text=table[action].to_numpy())
    fig.update_layout(barmode="stack", legend_title="action")
    return _layout(fig, title, xaxis_title="rule", yaxis_title="denials")


def _event_markers(entries: pd.DataFrame, x: pd.Series, y: pd.Series, more_hover: str) -> go.Figure:
    """A figure with one marker trace per event type of ``entries`` (timeline rows), placed at
    ``x`` / ``y`` (series on the same index); denials are crosses; hover shows the summary."""
    fig = go.Figure()
    for event_type, rows in entries.groupby("event_type", sort=True):
        fig.add_scatter(
            x=x[rows.index],
            y=y[rows.index],
            mode="markers",
            name=str(event_type),
            text=rows["summary"],
            customdata=rows["version"],
            marker={"size": 10, "symbol": "x" if event_type == "DownloadDenied" else "circle"},
            hovertemplate=f"v%{{customdata}} %{{text}}{more_hover}<extra></extra>",
        )
    return fig


def member_timeline(
    entries: pd.DataFrame,
    *,
    marker: object = None,
    title: str = "",
) -> go.Figure:
    """A member's history with a lane per licence, device or the member itself (rows of
    ``downloads.timeline`` as a frame), coloured by event type, with the event's summary on
    hover. ``marker`` draws a vertical line at a moment (e.g. the time-travel slider's)."""
    if entries.empty:
        raise ValueError("no events to draw")
    fig = _event_markers(entries, entries["recorded_at"], entries["aggregate_id"], "")
    if marker is not None:
        fig.add_vline(x=marker, line_dash="dash", line_color="grey")
    lanes = entries["aggregate_id"].nunique()
    return _layout(
        fig,
        title or "Timeline",
        height=max(320, 22 * lanes + 140),
        xaxis_title="recorded at",
        yaxis={"categoryorder": "array", "categoryarray": list(dict.fromkeys(entries["aggregate_id"]))[::-1]},
    )


def two_times(entries: pd.DataFrame, *, marker: object = None, title: str = "") -> go.Figure:
    """Each event at the time it happened (its ``at``, x) against how long after that the store
    recorded it (y, in minutes): zero for an event on time, above zero for one that arrived late,
    below zero for one from a device whose clock ran ahead. ``entries``: rows of
    ``downloads.timeline`` as a frame. ``marker`` draws a vertical line at a business time."""
    known = entries.dropna(subset=["at"]) if "at" in entries else entries.iloc[0:0]
    if known.empty:
        raise ValueError("no events with a business time to draw")
    at = pd.to_datetime(known["at"], utc=True)
    delay = (pd.to_datetime(known["recorded_at"], utc=True) - at).dt.total_seconds() / 60
    fig = _event_markers(known, at, delay, "<br>recorded %{y:.1f} min after it happened")
    fig.add_hline(y=0, line_color="grey", line_width=1)
    if marker is not None:
        fig.add_vline(x=marker, line_dash="dash", line_color="grey")
    return _layout(
        fig, title or "When it happened, and when the service knew", xaxis_title="happened at (business time)",
        yaxis_title="recorded after it happened (min)",
    )


def whatif_denials(frame: pd.DataFrame, *, title: str = "Denials by rule under each rule set") -> go.Figure:
    """Grouped bars: for each rule (x), the denials as recorded and under each variant rule set.
    ``frame``: ``whatif_frame`` output (columns rule, rules, denials)."""
    fig = go.Figure()
    for rules, group in frame.groupby("rules", sort=False):
        fig.add_bar(x=group["rule"], y=group["denials"], name=str(rules), text=group["denials"])
    fig.update_layout(barmode="group", legend_title="rules")
    return _layout(fig, title, xaxis_title="rule", yaxis_title="denials")


def whatif_changes(frame: pd.DataFrame, *, title: str = "What changes under each rule set") -> go.Figure:
    """Newly granted and newly denied requests per variant (``whatif_summary`` output)."""
    fig = go.Figure()
    for column, sign in (("newly_granted", 1), ("newly_denied", -1)):
        fig.add_bar(
            x=frame.index.astype(str), y=sign * frame[column], name=column.replace("_", " "), text=frame[column]
        )
    fig.update_layout(barmode="relative")
    return _layout(fig, title, xaxis_title="rule set", yaxis_title="requests (denied below zero)")
