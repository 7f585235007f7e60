"""Pictures of the ideas, drawn from the real objects: streams against global positions, a
snapshot and its tail on one stream, a long stream's partitions, and a migration's flows from
stored shapes to today's. Each returns a plotly figure (or an HTML view) a test can inspect."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable

import pandas as pd
import plotly.graph_objects as go

from es_core import EventRegistry, EventStore, RecordedEvent

from .figures import _layout
from .render import HTMLView, badge, card, format_value

STEP_COLOURS = {"kept": "#bbbbbb", "upcast": "#264653", "rename": "#2a9d8f", "split": "#f4a261", "retired": "#e76f51"}
_PALETTE = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8ab17d", "#6d597a", "#b56576"]


def log_diagram(records: Iterable[RecordedEvent], *, title: str = "Streams and the global log") -> go.Figure:
    """One lane per stream, one marker per event at its global position, labelled with its
    version in the stream: versions count within a stream, positions across the whole log."""
    frame = pd.DataFrame(
        [{"position": r.position, "stream": r.stream_id, "version": r.version, "type": r.event_type} for r in records]
    )
    if frame.empty:
        raise ValueError("no events to draw")
    fig = go.Figure()
    for i, (stream, group) in enumerate(frame.groupby("stream", sort=False)):
        colour = _PALETTE[i % len(_PALETTE)]
        fig.add_scatter(
            x=group["position"],
            y=[stream] * len(group),
            mode="lines+markers+text",
            name=str(stream),
            text=[f"v{v}" for v in group["version"]],
            textposition="top center",
            cliponaxis=False,  # the labels of the top lane stay whole
            customdata=group["type"],
            marker={"size": 14, "color": colour},
            line={"color": colour, "width": 1, "dash": "dot"},
            hovertemplate="position %{x}<br>%{y} v%{text}: %{customdata}<extra></extra>",
        )
    lanes = frame["stream"].nunique()
    return _layout(
        fig,
        title,
        height=max(220, 70 * lanes + 120),
        showlegend=False,
        xaxis={"title": "global position (commit order)", "dtick": 1},
        yaxis={"title": "", "autorange": "reversed"},
    )


def snapshot_diagram(store: EventStore, stream_id: str, *, title: str = "") -> go.Figure:
    """One stream along its versions: the events the latest snapshot covers, the tail a load
    replays after it, the snapshots kept, and the events no longer in the store (archived)."""
    head = store.stream_version(stream_id)
    if not head:
        raise ValueError(f"stream {stream_id!r} has no events")
    first_kept = store.read_stream(stream_id, limit=1)[0].version
    kept = sorted(store.snapshot_versions(stream_id))
    latest = kept[-1] if kept else 0
    spans = [
        ("archived (not in the store)", 1, first_kept - 1, "#bbbbbb"),
        ("covered by the latest snapshot", first_kept, latest, "#8ab17d"),
        ("tail: replayed on every load", max(latest, first_kept - 1) + 1, head, "#e76f51"),
    ]
    fig = go.Figure()
    for label, start, end, colour in spans:
        if end >= start:
            fig.add_bar(
                y=[stream_id], x=[end - start + 1], base=[start - 0.5], orientation="h", name=f"{label}",
                marker={"color": colour}, text=[f"v{start}..v{end}"], textposition="inside",
                hovertemplate=f"{label}: v{start}..v{end}<extra></extra>",
            )  # fmt: skip
    if kept:
        fig.add_scatter(
            x=kept, y=[stream_id] * len(kept), mode="markers+text", name="snapshots kept",
            marker={"symbol": "diamond", "size": 16, "color": "#264653"}, text=[f"snapshot v{v}" for v in kept],
            textposition="top center",
        )  # fmt: skip
    fig.update_layout(barmode="overlay", legend={"orientation": "h", "y": -0.35})
    return _layout(
        fig,
        title or f"{stream_id}: snapshot + tail",
        height=260,
        xaxis_title="version",
        yaxis={"showticklabels": False},
    )


def partition_diagram(partitions: pd.DataFrame, width: int, *, title: str = "") -> go.Figure:
    """A stream's partitions along its versions, one segment per ``(stream, bucket)`` key, from
    ``PartitionReport.partitions`` or :func:`workbench.planned_partitions`; the dashed lines are
    the bucket boundaries ``width`` apart."""
    if partitions.empty:
        raise ValueError("no partitions to draw")
    fig = go.Figure()
    for i, row in enumerate(partitions.itertuples(index=False)):
        first, last = int(row.first_version), int(row.last_version)
        fig.add_bar(
            y=["versions"], x=[last - first + 1], base=[first - 0.5], orientation="h", name=str(row.partition),
            marker={"color": _PALETTE[i % len(_PALETTE)]}, text=[f"{row.partition}: {row.rows} rows"],
            textposition="inside", insidetextanchor="middle",
            hovertemplate=f"{html.escape(str(row.partition))}<br>v{first}..v{last}, {row.rows} rows<extra></extra>",
        )  # fmt: skip
    last_version = int(partitions["last_version"].max())
    for boundary in range(width, last_version, width):
        fig.add_vline(x=boundary + 0.5, line_dash="dash", line_color="grey")
    fig.update_layout(barmode="overlay", showlegend=False)
    return _layout(
        fig, title or f"partitions of {width} versions", height=220, xaxis_title="version",
        yaxis={"showticklabels": False},
    )  # fmt: skip


# -- schema evolution ------------------------------------------------------------------------------


def migration_flows(records: Iterable[RecordedEvent], registry: EventRegistry) -> pd.DataFrame:
    """How many stored events of each (type, version) read as each of today's (type, version):
    one row per flow, with ``step`` saying how (kept, upcast, renamed, split or retired)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    kinds: dict[tuple[str, int], str] = {}
    for record in records:
        shape = (record.event_type, record.schema_version)
        source = f"{record.event_type} v{record.schema_version}"
        if shape not in kinds:
            steps = registry.trace(record.event_type, record.schema_version, record.data)
            kinds[shape] = "kept" if not steps else " + ".join(dict.fromkeys(s.kind for s in steps))
        produced = registry.upcast(record.event_type, record.schema_version, record.data)
        targets = [f"{t} v{v}" for t, v, _ in produced] or ["retired (dropped on read)"]
        for target in targets:
            counts[(source, target, kinds[shape])] += 1
    rows = [{"source": s, "target": t, "step": k, "events": n} for (s, t, k), n in sorted(counts.items())]
    return pd.DataFrame(rows, columns=["source", "target", "step", "events"])


def migration_sankey(flows: pd.DataFrame, *, title: str = "From stored shapes to today's") -> go.Figure:
    """Stored shapes on the left, today's shapes on the right, a band per flow (its width the
    number of events), coloured by the kind of step."""
    sources = list(dict.fromkeys(flows["source"]))
    targets = list(dict.fromkeys(flows["target"]))
    labels = sources + targets  # a shape both stored and read today is a node on each side
    left = {label: i for i, label in enumerate(sources)}
    right = {label: len(sources) + i for i, label in enumerate(targets)}

    def colour(step: str) -> str:  # by the step that decides the target: the last one
        return _rgba(STEP_COLOURS.get(step.split(" + ")[-1], "#264653"), 0.45)

    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "pad": 12, "thickness": 14, "color": "#6d597a"},
            link={
                "source": [left[s] for s in flows["source"]],
                "target": [right[t] for t in flows["target"]],
                "value": flows["events"].tolist(),
                "label": flows["step"].tolist(),
                "color": [colour(step) for step in flows["step"]],
                "hovertemplate": "%{source.label} → %{target.label}<br>%{label}: %{value} events<extra></extra>",
            },
        )
    )
    return _layout(fig, title, height=max(420, 28 * len(labels)))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def trace_view(registry: EventRegistry, record: RecordedEvent) -> HTMLView:
    """One stored event followed through every step the registry takes, to today's typed events."""
    steps = registry.trace(record.event_type, record.schema_version, record.data)
    stored = card(f"stored: {record.event_type} v{record.schema_version}", record.data)
    parts = [stored]
    for number, step in enumerate(steps, 1):
        results = ", ".join(f"{t} v{v}" for t, v, _ in step.results) or "nothing (dropped)"
        head = f"{number}. {step.kind} {step.source[0]} v{step.source[1]} → {results}"
        shown = {f"{t} v{v}": data for t, v, data in step.results} or {"result": "dropped on read"}
        parts.append(card(head, shown))
    events = registry.decode(record)
    typed = "".join(
        f"<div>{badge(type(e).event_type, type(e).schema_version)} "
        f"{format_value({f: getattr(e, f) for f in e.__struct_fields__})}</div>"
        for e in events
    )
    parts.append(f"<div><b>read by today's code as</b>{typed or ' nothing'}</div>")
    arrow = '<div style="font-size: 1.4em; opacity: 0.6; padding-left: 12px">↓</div>'
    return HTMLView(arrow.join(parts))
