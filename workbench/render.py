"""Readable HTML for events, streams, aggregates and snapshots in a notebook.

The core does not know IPython exists: :func:`enable_rich_display` registers these renderers
with the running kernel's formatters, and the ``*View`` wrappers carry ``_repr_html_`` for
anything that is not a single object (a stream, a list of events).
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import msgspec
import pandas as pd

from es_core import Aggregate, AppendResult, DomainEvent, EventStore, RecordedEvent, Snapshot

_CSS = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; "
    "border-collapse: collapse; margin: 2px 0;"
)
_CELL = "padding: 2px 8px; border-bottom: 1px solid rgba(128,128,128,0.25); text-align: left; vertical-align: top;"
_KEY = _CELL + " opacity: 0.7; white-space: nowrap;"
_MAX_ITEMS = 12  # items of a nested list or mapping shown before "… n more"
_MAX_FIELDS = 40  # fields of an object's own table
_MAX_DEPTH = 4
_MAX_ROWS = 25  # rows of a records table
_FOLD_AFTER = 6  # collections larger than this start folded


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def badge(event_type: str, schema_version: int | None = None) -> str:
    """A coloured label for an event type (the colour is stable per type name)."""
    hue = zlib.crc32(event_type.encode()) % 360
    style = (
        f"background: hsla({hue}, 70%, 45%, 0.18); border: 1px solid hsla({hue}, 70%, 40%, 0.6); "
        "border-radius: 4px; padding: 0 5px; white-space: nowrap;"
    )
    version = f" <small>v{schema_version}</small>" if schema_version is not None else ""
    return f'<span style="{style}">{_e(event_type)}{version}</span>'


def _fields(value: Any) -> dict[str, Any] | None:
    """A Struct's or a mapping's fields, or None for anything else."""
    if isinstance(value, msgspec.Struct):
        return {f: getattr(value, f) for f in value.__struct_fields__}
    if isinstance(value, Mapping):
        return dict(value)
    return None


def compact(value: Any) -> str:
    """A value in one short cell: times to the minute, collections as their size."""
    if value is None:
        return '<span style="opacity: 0.5">—</span>'
    if isinstance(value, datetime):
        return _e(value.strftime("%Y-%m-%d %H:%M"))
    if isinstance(value, Enum):
        return _e(value.name)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        items = list(value.values() if isinstance(value, Mapping) else value)
        preview = "; ".join(compact_text(v) for v in items[:5]) + (" …" if len(items) > 5 else "")
        return f'<span title="{_e(preview)}">[{len(items)}]</span>'
    if isinstance(value, msgspec.Struct):
        return _e(compact_text(value))
    text = str(value)
    return _e(text if len(text) <= 80 else text[:77] + "…")


def compact_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    fields = _fields(value)
    if fields is not None:
        return ", ".join(f"{k}={compact_text(v)}" for k, v in fields.items())
    return str(value)


def _records_table(rows: list[tuple[Any, Any]], *, keyed: bool) -> str | None:
    """Rows that are all Structs of one type (or mappings with the same keys) as one table with
    a column per field, a row per item; None when the rows are not such records."""
    if not rows:
        return None
    first = _fields(rows[0][1])
    if first is None or not first:
        return None
    columns = list(first)
    kind = type(rows[0][1])
    records = []
    for key, value in rows:
        fields = _fields(value)
        if fields is None or type(value) is not kind or list(fields) != columns:
            return None
        records.append((key, fields))
    head = (f'<th style="{_KEY}"></th>' if keyed else "") + "".join(f'<th style="{_KEY}">{_e(c)}</th>' for c in columns)
    body = []
    for key, fields in records[:_MAX_ROWS]:
        label = f'<td style="{_KEY}">{_e(key)}</td>' if keyed else ""
        body.append(
            "<tr>" + label + "".join(f'<td style="{_CELL}">{compact(fields[c])}</td>' for c in columns) + "</tr>"
        )
    if len(records) > _MAX_ROWS:
        span = len(columns) + keyed
        body.append(f'<tr><td colspan="{span}" style="{_CELL}"><i>… {len(records) - _MAX_ROWS} more</i></td></tr>')
    return f'<table style="{_CSS}"><tr>{head}</tr>{"".join(body)}</table>'


def format_value(value: Any, depth: int = 0) -> str:
    """A value as HTML: times in ISO form; collections of records as one table (a row per item);
    other mappings as key/value tables; long collections cut, and folded away when large."""
    if value is None:
        return '<span style="opacity: 0.5">—</span>'
    if isinstance(value, datetime):
        return _e(value.isoformat(sep=" ", timespec="seconds"))
    if isinstance(value, Enum):
        return _e(value.name)
    if isinstance(value, UUID | str | int | float | bool):
        return _e(value)
    if isinstance(value, bytes):
        return _e(f"<{len(value)} bytes>")
    if isinstance(value, msgspec.Struct):
        value = _fields(value)
    if depth >= _MAX_DEPTH:
        return compact(value)
    if isinstance(value, Mapping):
        if not value:
            return '<span style="opacity: 0.5">{}</span>'
        table = _records_table(list(value.items()), keyed=True) or _mapping_table(value, depth + 1)
        return _fold(table, len(value))
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if not items:
            return '<span style="opacity: 0.5">[]</span>'
        table = _records_table([(i, v) for i, v in enumerate(items)], keyed=False)
        if table is None:
            shown = "".join(f"<li>{format_value(v, depth + 1)}</li>" for v in items[:_MAX_ITEMS])
            more = f"<li><i>… {len(items) - _MAX_ITEMS} more</i></li>" if len(items) > _MAX_ITEMS else ""
            table = f'<ol start="0" style="margin: 0; padding-left: 2em">{shown}{more}</ol>'
        return _fold(table, len(items))
    return _e(repr(value))


def _fold(markup: str, count: int) -> str:
    """Large collections start folded: a one-line summary that opens on click."""
    if count <= _FOLD_AFTER:
        return markup
    return f'<details><summary style="cursor: pointer">{count} items</summary>{markup}</details>'


def _mapping_table(mapping: Mapping[Any, Any], depth: int = 0) -> str:
    """A two-column table; an object's own fields (depth 0) show up to ``_MAX_FIELDS`` rows,
    nested mappings up to ``_MAX_ITEMS``."""
    if not mapping:
        return '<span style="opacity: 0.5">{}</span>'
    items = list(mapping.items())
    shown = _MAX_FIELDS if depth == 0 else _MAX_ITEMS
    rows = "".join(
        f'<tr><td style="{_KEY}">{_e(k)}</td><td style="{_CELL}">{format_value(v, depth)}</td></tr>'
        for k, v in items[:shown]
    )
    if len(items) > shown:
        rows += f'<tr><td style="{_CELL}" colspan="2"><i>… {len(items) - shown} more</i></td></tr>'
    return f'<table style="{_CSS}">{rows}</table>'


def _card(title: str, body: str) -> str:
    return (
        '<div style="border: 1px solid rgba(128,128,128,0.4); border-radius: 6px; padding: 6px 10px; '
        f'margin: 4px 0; display: inline-block; min-width: 320px">{title}{body}</div>'
    )


# -- single objects ----------------------------------------------------------------------------


def event_html(record: RecordedEvent) -> str:
    """One stored event: where it sits (stream, version, global position), when, and its data."""
    title = (
        f"<div>{badge(record.event_type, record.schema_version)} "
        f"<b>{_e(record.stream_id)}</b> v{record.version} "
        f'<span style="opacity: 0.7">· position {record.position} · '
        f"{format_value(record.recorded_at)}</span></div>"
    )
    body = _mapping_table(record.data)
    if record.metadata:
        body += f'<div style="opacity: 0.7">metadata</div>{_mapping_table(record.metadata)}'
    return _card(title, body)


def domain_event_html(event: DomainEvent) -> str:
    """A typed (decoded, current-shape) event and its fields."""
    cls = type(event)
    fields = {f: getattr(event, f) for f in event.__struct_fields__}
    return _card(f"<div>{badge(cls.event_type, cls.schema_version)}</div>", _mapping_table(fields))


def aggregate_html(aggregate: Aggregate[Any]) -> str:
    """An aggregate: its type, id, version (events applied) and its state, field by field."""
    state = aggregate.state
    fields = {f: getattr(state, f) for f in state.__struct_fields__} if isinstance(state, msgspec.Struct) else {}
    pending = f" · <b>{len(aggregate.pending)} pending</b>" if aggregate.pending else ""
    snap = f" · from snapshot v{aggregate.snapshot_version}" if aggregate.snapshot_version else ""
    title = (
        f"<div><b>{_e(type(aggregate).__name__)}</b> {_e(aggregate.id)} "
        f'<span style="opacity: 0.7">· stream {_e(aggregate.stream_id)} · version {aggregate.version}'
        f"{snap}{pending}</span></div>"
    )
    return _card(title, _mapping_table(fields) if fields else f"<pre>{_e(state)}</pre>")


def snapshot_html(snapshot: Snapshot) -> str:
    title = (
        f"<div><b>Snapshot</b> of {_e(snapshot.stream_id)} at v{snapshot.version} "
        f'<span style="opacity: 0.7">· state {_e(snapshot.state_type)} v{snapshot.state_schema_version} · '
        f"{len(snapshot.state)} bytes · taken {format_value(snapshot.taken_at)}</span></div>"
    )
    try:
        state = msgspec.json.decode(snapshot.state)
    except msgspec.DecodeError:
        state = {"state": f"<{len(snapshot.state)} bytes, not JSON>"}
    body = _mapping_table(state) if isinstance(state, Mapping) else format_value(state)
    return _card(title, body)


def card(title: str, fields: Mapping[str, Any]) -> str:
    """A titled card of fields (what every renderer here draws)."""
    return _card(f"<div><b>{_e(title)}</b></div>", _mapping_table(fields))


def struct_html(obj: msgspec.Struct) -> str:
    """Any other msgspec Struct (a command's outcome, a simulation or what-if report): its
    type name and fields."""
    fields = {f: getattr(obj, f) for f in obj.__struct_fields__}
    return _card(f"<div><b>{_e(type(obj).__name__)}</b></div>", _mapping_table(fields))


def append_result_html(result: AppendResult) -> str:
    what = "a retry: nothing new written" if result.duplicate else f"{result.count} event(s) written"
    return _card(
        f"<div><b>Appended</b> to {_e(result.stream_id)}: versions {result.first_version}..{result.last_version}"
        f' <span style="opacity: 0.7">· {what}</span></div>',
        "",
    )


# -- collections -------------------------------------------------------------------------------


def events_html(records: Iterable[RecordedEvent], *, title: str = "", max_rows: int = 50) -> str:
    """Stored events as one table, a row each."""
    rows = []
    total = 0
    for record in records:
        total += 1
        if total > max_rows:
            continue
        data = ", ".join(f"{_e(k)}={format_value(v, _MAX_DEPTH)}" for k, v in record.data.items())
        rows.append(
            f'<tr><td style="{_CELL}">{record.position}</td>'
            f'<td style="{_CELL} white-space: nowrap">{_e(record.stream_id)}</td>'
            f'<td style="{_CELL}">{record.version}</td>'
            f'<td style="{_CELL}">{badge(record.event_type, record.schema_version)}</td>'
            f'<td style="{_CELL}; white-space: nowrap">{format_value(record.recorded_at)}</td>'
            f'<td style="{_CELL}">{data}</td></tr>'
        )
    head = "".join(
        f'<th style="{_KEY}">{h}</th>' for h in ("position", "stream", "version", "event", "recorded at", "data")
    )
    more = (
        f'<tr><td colspan="6" style="{_CELL}"><i>… {total - max_rows} more events</i></td></tr>'
        if total > max_rows
        else ""
    )
    caption = f"<div><b>{_e(title)}</b> <span style='opacity: 0.7'>· {total} events</span></div>" if title else ""
    return f'{caption}<table style="{_CSS}"><tr>{head}</tr>{"".join(rows)}{more}</table>'


class EventsView:
    """Displays a list of stored events as a table; ``len()`` and iteration pass through."""

    def __init__(self, records: Sequence[RecordedEvent], title: str = "", max_rows: int = 50) -> None:
        self.records = list(records)
        self.title = title
        self.max_rows = max_rows

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.records)

    def __getitem__(self, index: int) -> RecordedEvent:
        return self.records[index]

    def _repr_html_(self) -> str:
        return events_html(self.records, title=self.title, max_rows=self.max_rows)

    def __repr__(self) -> str:
        return f"<{len(self.records)} events{': ' + self.title if self.title else ''}>"


def view_stream(store: EventStore, stream_id: str, *, max_rows: int = 50) -> EventsView:
    """One stream's events, read now, displayed as a table."""
    records = store.read_stream(stream_id)
    return EventsView(
        records, title=f"stream {stream_id} (version {store.stream_version(stream_id)})", max_rows=max_rows
    )


def view_log(store: EventStore, *, after: int = 0, limit: int | None = 50) -> EventsView:
    """The global log (or a page of it) displayed as a table."""
    records = list(store.read_all(after=after, limit=limit))
    return EventsView(records, title=f"global log after position {after}", max_rows=limit or 50)


def _table_cell(value: Any) -> str:
    """One cell of :func:`table_html`: missing values as a dash, times to the minute, booleans
    as words."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return '<span style="opacity: 0.5">—</span>'
    if pd.api.types.is_bool(value):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _e(value.strftime("%Y-%m-%d %H:%M"))
    return _e(value)


def table_html(frame: pd.DataFrame, *, empty: str = "none", index: bool = False) -> str:
    """A DataFrame as a compact HTML table that reads well in a notebook and an export: no
    ``NaN``/``NaT`` (a dash instead), times without seconds and time zone, ``empty`` in italics
    when there are no rows."""
    if frame.empty:
        return f'<p style="margin: 2px 0"><i>{_e(empty)}</i></p>'
    columns = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    head = "".join(f'<th style="{_KEY}">{_e(c)}</th>' for c in columns)
    rows = []
    for label, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = ([label] if index else []) + list(row)
        rows.append("<tr>" + "".join(f'<td style="{_CELL}">{_table_cell(v)}</td>' for v in cells) + "</tr>")
    return f'<table style="{_CSS}"><tr>{head}</tr>{"".join(rows)}</table>'


class HTMLView:
    """Any HTML string, displayed as HTML (e.g. ``HTMLView(aggregate_html(member))``)."""

    def __init__(self, markup: str) -> None:
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup


# -- registering with IPython ----------------------------------------------------------------

RENDERERS: dict[type, Any] = {
    RecordedEvent: event_html,
    DomainEvent: domain_event_html,
    Aggregate: aggregate_html,
    Snapshot: snapshot_html,
    AppendResult: append_result_html,
    msgspec.Struct: struct_html,
}


def enable_rich_display(ipython: Any = None) -> bool:
    """Register the HTML renderers with the running IPython kernel (subclasses included), and
    make plotly figures exportable (:mod:`workbench.plotting`). Returns False outside IPython,
    where there is nothing to register."""
    from .plotting import use_exportable_figures

    use_exportable_figures()
    if ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        ipython = get_ipython()
    if ipython is None:
        return False
    formatter = ipython.display_formatter.formatters["text/html"]
    for cls, render in RENDERERS.items():
        formatter.for_type(cls, render)
    return True


def to_html(obj: object) -> str:
    """The HTML this module would show for ``obj`` (an event, aggregate, snapshot, or a view)."""
    for cls in type(obj).__mro__:
        render = RENDERERS.get(cls)
        if render is not None:
            return str(render(obj))
    repr_html = getattr(obj, "_repr_html_", None)
    if callable(repr_html):
        return str(repr_html())
    return f"<pre>{_e(repr(obj))}</pre>"
