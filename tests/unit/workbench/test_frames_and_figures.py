"""DataFrames from events, and figures that hold data."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

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
