"""Events, the global log and schema censuses as pandas DataFrames.

A frame has one row per stored event. Its columns are the record's own (``position``,
``stream_id``, ``version``, ``event_type``, ``schema_version``, ``recorded_at``) followed by the
event's data fields, flattened one level (fields missing from an event type are empty).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from es_core import EventRegistry, EventStore, RecordedEvent

from .benchmark_results import run_rows, scaling_rows

RECORD_COLUMNS = ["position", "stream_id", "version", "event_type", "schema_version", "recorded_at"]
Progress = Callable[[int, int], None]


def _row(record: RecordedEvent, with_data: bool, with_metadata: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "position": record.position,
        "stream_id": record.stream_id,
        "version": record.version,
        "event_type": record.event_type,
        "schema_version": record.schema_version,
        "recorded_at": record.recorded_at,
    }
    if with_data:
        for key, value in record.data.items():
            row.setdefault(key, value)  # a data field never hides a record column
    if with_metadata:
        for key, value in record.metadata.items():
            row[f"meta.{key}"] = value
    return row


def events_frame(
    records: Iterable[RecordedEvent],
    *,
    with_data: bool = True,
    with_metadata: bool = False,
    progress: Progress | None = None,
    span: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """One row per stored event, in the order given. ISO-8601 strings in data fields named
    ``at`` or ending in ``_at`` become UTC timestamps, so they sort and plot as times.

    ``progress`` is called every 1,000 events with (events read, events read); given a
    ``span`` of global positions (after, head), with how far through it the read is instead,
    since positions need not be dense (on Cassandra they are not)."""
    rows = []
    for i, record in enumerate(records, 1):
        rows.append(_row(record, with_data, with_metadata))
        if progress is not None and i % 1000 == 0:
            if span is None:
                progress(i, i)
            else:
                progress(record.position - span[0], span[1] - span[0])
    if progress is not None:
        done = len(rows) if span is None else span[1] - span[0]
        progress(done, done)
    frame = pd.DataFrame(rows, columns=None if rows else RECORD_COLUMNS)
    return _parse_times(frame)


def global_log_frame(
    store: EventStore,
    *,
    after: int = 0,
    limit: int | None = None,
    with_data: bool = True,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The global log (commit order) as a frame, indexed by nothing but in ``position`` order."""
    span = (after, max(after, store.head_position())) if limit is None else None
    return events_frame(store.read_all(after=after, limit=limit), with_data=with_data, progress=progress, span=span)


def decoded_frame(records: Iterable[RecordedEvent], registry: EventRegistry) -> pd.DataFrame:
    """What the code *reads*: each stored record brought to current shapes by ``registry``
    (upcast, renamed, split or dropped). Columns: the record's position and stored shape, then
    the current type, version and fields."""
    rows = []
    for item in registry.decode_all(records):
        record, event, cls = item.record, item.event, type(item.event)
        row: dict[str, Any] = {
            "position": record.position,
            "stream_id": record.stream_id,
            "stored_type": record.event_type,
            "stored_version": record.schema_version,
            "event_type": cls.event_type,
            "schema_version": cls.schema_version,
        }
        for field in event.__struct_fields__:
            row.setdefault(field, getattr(event, field))
        rows.append(row)
    columns = ["position", "stream_id", "stored_type", "stored_version", "event_type", "schema_version"]
    return _parse_times(pd.DataFrame(rows, columns=None if rows else columns))


def census_frame(census: Mapping[tuple[str, int], int]) -> pd.DataFrame:
    """A schema census (``store.schema_census()``) as rows of event_type, schema_version, count,
    sorted by type then version."""
    rows = [{"event_type": t, "schema_version": v, "count": n} for (t, v), n in census.items()]
    frame = pd.DataFrame(rows, columns=["event_type", "schema_version", "count"])
    return frame.sort_values(["event_type", "schema_version"], ignore_index=True)


def decoded_census(records: Iterable[RecordedEvent], registry: EventRegistry) -> dict[tuple[str, int], int]:
    """The census of what ``registry`` turns the records into (current shapes only)."""
    counts: dict[tuple[str, int], int] = {}
    for item in registry.decode_all(records):
        key = (type(item.event).event_type, type(item.event).schema_version)
        counts[key] = counts.get(key, 0) + 1
    return counts


def struct_frame(items: Iterable[Any], *, index: str | None = None) -> pd.DataFrame:
    """msgspec Structs, dataclasses or mappings (e.g. the licences in an aggregate's state) as
    rows, one column per field."""
    rows = [_as_dict(item) for item in items]
    frame = pd.DataFrame(rows)
    frame = _parse_times(frame)
    if index is not None and index in frame.columns:
        frame = frame.set_index(index)
    return frame


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    fields = getattr(item, "__struct_fields__", None)
    if fields is not None:
        return {f: getattr(item, f) for f in fields}
    if hasattr(item, "__dataclass_fields__"):
        return {f: getattr(item, f) for f in item.__dataclass_fields__}
    return {"value": item}


def _parse_times(frame: pd.DataFrame) -> pd.DataFrame:
    for column in frame.columns:
        name = str(column)
        if name == "recorded_at" or not (name == "at" or name.endswith("_at") or name.endswith(".at")):
            continue
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    if "recorded_at" in frame.columns:
        frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True)
    return frame


# -- the downloads domain ----------------------------------------------------------------------

DECISION_COLUMNS = [
    "position",
    "member_id",
    "at",
    "action",
    "outcome",
    "rule",
    "title_id",
    "studio_id",
    "device_id",
    "license_id",
]


def decisions_frame(log: pd.DataFrame) -> pd.DataFrame:
    """One row per download decision in a global-log frame: every granted download
    (``LicenseAcquired``), granted renewal (``LicenseRenewed``) and denial (``DownloadDenied``),
    at the domain time ``at``. A renewal's device comes from its licence's acquisition."""
    wanted = log[log["event_type"].isin(["LicenseAcquired", "LicenseRenewed", "DownloadDenied"])]
    if wanted.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    acquired = log[log["event_type"] == "LicenseAcquired"]
    device_of = dict(zip(acquired["license_id"], acquired["device_id"], strict=True))
    studio_of = dict(zip(acquired["license_id"], acquired["studio_id"], strict=True))
    frame = pd.DataFrame(
        {
            "position": wanted["position"],
            "member_id": wanted["stream_id"].str.removeprefix("member-"),
            "at": wanted["at"],
            "action": wanted["event_type"].map({"LicenseAcquired": "acquire", "LicenseRenewed": "renew"}),
            "outcome": (wanted["event_type"] == "DownloadDenied").map({True: "denied", False: "granted"}),
            "rule": wanted.get("rule"),
            "title_id": wanted["title_id"],
            "studio_id": wanted.get("studio_id"),
            "device_id": wanted.get("device_id"),
            "license_id": wanted["license_id"],
        }
    )
    denied = wanted["event_type"] == "DownloadDenied"
    frame.loc[denied, "action"] = wanted.loc[denied, "action"]
    frame["device_id"] = frame["device_id"].fillna(frame["license_id"].map(device_of))
    frame["studio_id"] = frame["studio_id"].fillna(frame["license_id"].map(studio_of))
    return frame.reset_index(drop=True)


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A read model's ``rows()`` (plain dicts) as a frame, with time columns parsed."""
    return _parse_times(pd.DataFrame(list(rows)))


def whatif_frame(reports: Mapping[str, Any], *, recorded: str = "as recorded") -> pd.DataFrame:
    """Denials per rule as recorded and under each what-if rule set, from ``WhatIfReport``s
    keyed by a label: columns ``rule``, ``rules`` (the label, or ``recorded``) and ``denials``."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()  # rules whose recorded count is in already (every report has the same)
    for label, report in reports.items():
        for rule, counts in report.denials_by_rule.items():
            if rule not in seen:
                seen.add(rule)
                rows.append({"rule": rule, "rules": recorded, "denials": counts["before"]})
            rows.append({"rule": rule, "rules": label, "denials": counts["after"]})
    frame = pd.DataFrame(rows, columns=["rule", "rules", "denials"])
    order = [recorded, *reports]
    frame["rules"] = pd.Categorical(frame["rules"], categories=order, ordered=True)
    return frame.sort_values(["rules", "rule"], ignore_index=True)


def whatif_summary(reports: Mapping[str, Any]) -> pd.DataFrame:
    """One row per what-if rule set: requests replayed, grants and denials before and after,
    and how many outcomes changed."""
    columns = [
        "download_requests",
        "granted_before",
        "granted_after",
        "denied_before",
        "denied_after",
        "newly_granted",
        "newly_denied",
        "rule_changed",
    ]
    rows = {label: {c: getattr(report, c) for c in columns} for label, report in reports.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    frame["members_affected"] = [len(report.by_member) for report in reports.values()]
    return frame


# -- saved benchmark results -------------------------------------------------------------------


def benchmark_frame(source: str | Path | dict[str, Any] | None = None) -> pd.DataFrame:
    """The saved ``python -m benchmarks run`` figures: a row per figure and implementation
    (``es_core``, ``floor``, ``floor_with_id_key``, ``peer``) with its ``value`` in ``unit``,
    and ``vs_floor``, the value over plain sqlite3's for the same figure (1.0 = the floor).
    ``source``: a results file or dict; by default the results committed with the project."""
    frame = pd.DataFrame(run_rows(source))
    if frame.empty:
        raise ValueError("no benchmark run in the results: run `python -m benchmarks run --save`")
    floor = frame[frame["implementation"] == "floor"].set_index("figure")["value"]
    return frame.assign(vs_floor=frame["value"] / frame["figure"].map(floor))


def benchmark_scaling_frame(source: str | Path | dict[str, Any] | None = None) -> pd.DataFrame:
    """The saved ``python -m benchmarks scaling`` load latencies: a row per history length
    (``events``), implementation and snapshots on/off, named together in ``variant``, with
    ``p50_ms`` and ``p99_ms`` per load."""
    frame = pd.DataFrame(scaling_rows(source))
    if frame.empty:
        raise ValueError("no scaling run in the results: run `python -m benchmarks scaling --save`")
    how = frame["snapshots"].map({True: "snapshot + tail", False: "full replay"})
    return frame.assign(events=frame["events_per_aggregate"], variant=frame["implementation"] + ", " + how)
