"""DataFrames from events, and figures that hold data."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

import workbench as wb
from es_core import EventStore
from workbench import (
    bar_counts,
    census_bars,
    census_comparison,
    census_frame,
    counts_over_time,
    events_frame,
    global_log_frame,
    grouped_bars,
    load_cost_chart,
    stream_timeline,
    struct_frame,
    trace_points,
)


def test_global_log_frame_has_a_row_per_event_in_commit_order(store: EventStore) -> None:
    calls: list[tuple[int, int]] = []
    frame = global_log_frame(store, progress=lambda done, total: calls.append((done, total)))
    assert list(frame["position"]) == [1, 2, 3, 4, 5]
    assert list(frame.columns[:6]) == [
        "position",
        "stream_id",
        "version",
        "event_type",
        "schema_version",
        "recorded_at",
    ]
    assert frame.loc[frame["event_type"] == "DeviceRegistered", "device_id"].tolist() == ["ana-phone", "ben-phone"]
    assert isinstance(frame["at"].dtype, pd.DatetimeTZDtype) and isinstance(
        frame["recorded_at"].dtype, pd.DatetimeTZDtype
    )
    assert calls[-1] == (5, 5)


def test_empty_inputs_give_empty_frames_with_the_record_columns() -> None:
    frame = events_frame([])
    assert frame.empty and "event_type" in frame.columns


def test_census_frame_is_sorted(store: EventStore) -> None:
    frame = census_frame(store.schema_census())
    assert frame.to_dict("records")[0] == {"event_type": "DeviceRegistered", "schema_version": 1, "count": 2}
    assert frame["count"].sum() == 5


def test_struct_frame_accepts_structs_dataclasses_and_mappings() -> None:
    frame = struct_frame(
        [{"id": "a", "expires_at": "2024-01-01T00:00:00+00:00"}, {"id": "b", "expires_at": None}], index="id"
    )
    assert list(frame.index) == ["a", "b"] and isinstance(frame["expires_at"].dtype, pd.DatetimeTZDtype)


def test_figures_carry_their_data(store: EventStore) -> None:
    census = store.schema_census()
    assert trace_points(census_bars(census)) == 3
    assert len(census_comparison(census, census, labels=("a", "b")).data) == 2
    log = global_log_frame(store)
    timeline = stream_timeline(log[log["stream_id"] == "member-ana"])
    assert {t.name for t in timeline.data} == {"MemberSubscribed", "DeviceRegistered", "LicenseAcquired"}
    cost = pd.DataFrame({"events": [10, 20, 10, 20], "variant": ["a", "a", "b", "b"], "ms_per_load": [1, 2, 1, 1]})
    assert [t.name for t in load_cost_chart(cost).data] == ["a", "b"]
    weekly = counts_over_time(log, time_column="recorded_at", by="event_type", freq="D")
    assert trace_points(weekly) >= 3
    assert trace_points(bar_counts(log["event_type"].value_counts(), title="t")) == 3
    both = grouped_bars(pd.DataFrame({"x": [1, 2], "y": [3, 4]}, index=["r1", "r2"]), title="t")
    assert isinstance(both, go.Figure) and len(both.data) == 2


def test_empty_timelines_are_refused() -> None:
    with pytest.raises(ValueError):
        stream_timeline(events_frame([]))


_SAVED = {
    "run": {
        "suite": "run",
        "results": {
            "append": {
                "es_core": {"events_per_s": 900.0},
                "floor": {"events_per_s": 1000.0},
                "peer": {"events_per_s": 450.0},
                "ratio_to_floor": 0.9,
            },
            "load": {"es_core": {"aggregates_per_s": 30.0}, "floor": {"aggregates_per_s": 40.0}},
        },
    },
    "scaling": {
        "suite": "scaling",
        "load": [
            {"events_per_aggregate": n, "implementation": "es_core", "snapshots": snap, "p50_ms": ms, "p99_ms": ms * 2}
            for n, snap, ms in ((100, False, 0.3), (100, True, 0.1), (1000, False, 2.6), (1000, True, 0.1))
        ],
    },
}


def test_benchmark_figures_are_relative_to_the_floor_of_the_same_figure() -> None:
    frame = wb.benchmark_frame(_SAVED)
    got = {(r.figure.split(",")[0], r.implementation): round(r.vs_floor, 3) for r in frame.itertuples()}
    assert got == {
        ("append", "es_core"): 0.9, ("append", "floor"): 1.0, ("append", "peer"): 0.45,
        ("load", "es_core"): 0.75, ("load", "floor"): 1.0,
    }


def test_benchmark_figures_take_the_label_and_unit_the_results_file_names() -> None:
    saved = {"run": {"suite": "run", "results": {"read_all": {
        "label": "global log read", "unit": "events_per_s", "ratio_to_floor": 0.5,
        "es_core": {"events_per_s": 50.0, "aggregates_per_s": 1.0}, "floor": {"events_per_s": 100.0},
    }}}}
    frame = wb.benchmark_frame(saved)
    assert list(frame["figure"].unique()) == ["global log read"]
    assert dict(zip(frame["implementation"], frame["value"], strict=True)) == {"es_core": 50.0, "floor": 100.0}


def test_benchmark_scaling_rows_name_their_variant() -> None:
    frame = wb.benchmark_scaling_frame(_SAVED)
    assert list(frame["events"]) == [100, 100, 1000, 1000]
    assert list(frame["variant"]) == ["es_core, full replay", "es_core, snapshot + tail"] * 2
    chart = wb.load_cost_chart(frame, y="p50_ms")
    assert [t.name for t in chart.data] == ["es_core, full replay", "es_core, snapshot + tail"]


def test_missing_benchmark_results_say_how_to_make_them() -> None:
    with pytest.raises(ValueError, match="benchmarks run --save"):
        wb.benchmark_frame({"run": {"suite": "run", "results": {}}})
    with pytest.raises(ValueError, match="benchmarks scaling --save"):
        wb.benchmark_scaling_frame({"scaling": {"suite": "scaling"}})


class _Report:
    def __init__(self, denials_by_rule: dict[str, dict[str, int]]) -> None:
        self.denials_by_rule = denials_by_rule


def test_whatif_frame_has_the_recorded_count_once_then_each_rule_set() -> None:
    reports = {
        "limit 5": _Report({"per_title": {"before": 9, "after": 4}, "devices": {"before": 2, "after": 2}}),
        "3 devices": _Report({"per_title": {"before": 9, "after": 9}, "devices": {"before": 2, "after": 0}}),
    }
    frame = wb.whatif_frame(reports)
    assert [tuple(r) for r in frame[["rules", "rule", "denials"]].itertuples(index=False)] == [
        ("as recorded", "devices", 2), ("as recorded", "per_title", 9),
        ("limit 5", "devices", 2), ("limit 5", "per_title", 4),
        ("3 devices", "devices", 0), ("3 devices", "per_title", 9),
    ]


def test_two_times_puts_a_late_event_above_the_line() -> None:
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
    entries = pd.DataFrame(
        [
            {"version": 1, "recorded_at": t, "at": t, "event_type": "MemberSubscribed", "summary": "joined"},
            {"version": 2, "recorded_at": t + timedelta(minutes=8), "at": t + timedelta(minutes=3),
             "event_type": "LicenseAcquired", "summary": "late"},
            {"version": 3, "recorded_at": t, "at": None, "event_type": "Unknown", "summary": "no business time"},
        ]
    )
    fig = wb.two_times(entries, marker=t)
    assert trace_points(fig) == 2  # an event without a business time is left out
    late = next(trace for trace in fig.data if trace.name == "LicenseAcquired")
    assert list(late.y) == [5.0]  # recorded five minutes after it happened
    with pytest.raises(ValueError, match="no events with a business time"):
        wb.two_times(entries.iloc[2:])
