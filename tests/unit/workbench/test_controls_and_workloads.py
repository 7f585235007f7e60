"""The time-travel control (its callbacks are plain functions), limits, the busy member and
load timing, on a small simulated store."""

from __future__ import annotations

import html
from datetime import timedelta

import pandas as pd
import pytest

import downloads
from es_core import NO_SNAPSHOTS, MemoryStore, Repository, SnapshotPolicy, StoreError
from workbench import (
    EXPIRED_NOTE,
    BusyMember,
    decisions_frame,
    global_log_frame,
    measure_load,
    state_at,
    time_travel,
)


@pytest.fixture(scope="module")
def service() -> downloads.DownloadService:
    store = MemoryStore()
    downloads.simulate(store, members=12, days=120, seed=3)
    return downloads.DownloadService(store)


def _busiest(service: downloads.DownloadService) -> str:
    log = global_log_frame(service.store, with_data=False)
    return str(log["stream_id"].value_counts().index[0]).removeprefix("member-")


def test_moving_a_slider_calls_state_at(service: downloads.DownloadService) -> None:
    member_id = _busiest(service)
    control = time_travel(service, member_id)
    assert control.last is not None and control.last.version == len(control.moments)
    control.time_slider.value = control.moments[2]
    assert control.last.version == 3 and control.last.moment == control.moments[2]
    assert "version 3 of" in control.heading.value
    control.version_slider.value = 1
    assert control.last.version == 1 and control.last.member.state.plan is not None
    assert control.widget.children[1] is control.time_slider


def test_the_sliders_and_the_timeline_marker_stay_in_sync(service: downloads.DownloadService) -> None:
    control = time_travel(service, _busiest(service))
    marker = control.figure.layout.shapes[0]
    control.time_slider.value = control.moments[4]
    assert control.version_slider.value == control.last.version >= 5
    assert pd.Timestamp(marker.x0) == pd.Timestamp(control.moments[4]) == pd.Timestamp(marker.x1)
    control.version_slider.value = 2
    assert control.time_slider.value == control.moments[1] and control.last.moment is None
    assert pd.Timestamp(marker.x0) == pd.Timestamp(control.moments[1])
    control.version_slider.value = 0
    assert control.last.version == 0 and control.time_slider.index == 0, "version 0 is 'before v1'"
    assert pd.Timestamp(marker.x0) < pd.Timestamp(control.moments[0])


def test_the_timeline_is_redrawn_with_the_marker_where_the_sliders_are(service: downloads.DownloadService) -> None:
    control = time_travel(service, _busiest(service))
    control.version_slider.value = 3
    (output,) = control.chart.outputs
    drawn = output["data"]["application/vnd.plotly.v1+json"]["layout"]["shapes"][0]
    assert pd.Timestamp(drawn["x0"]) == pd.Timestamp(control.moments[2])
    assert "plotly-graph-div" in output["data"]["text/html"]


def test_the_control_keeps_working_after_the_store_is_closed() -> None:
    store = MemoryStore()
    downloads.simulate(store, members=4, days=60, seed=5)
    service = downloads.DownloadService(store)
    member_id = _busiest(service)
    control = time_travel(service, member_id)
    expected = service.member(member_id, at_version=3).state
    store.close()  # what the notebook's last cell does
    control.version_slider.value = 3
    assert control.error is None and control.last.version == 3 and control.last.member.state == expected


def test_a_failing_redraw_is_shown_in_the_control(
    service: downloads.DownloadService, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = time_travel(service, _busiest(service))

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the store is closed")

    monkeypatch.setattr(control.history, "member", broken)
    control.version_slider.value = 2
    assert control.error == "StoreError: the store is closed"
    assert "Could not redraw" in control.heading.value


def test_expired_licences_are_marked_and_explained(service: downloads.DownloadService) -> None:
    member_id = _busiest(service)
    control = time_travel(service, member_id)
    for version in range(len(control.moments), 0, -1):
        control.version_slider.value = version
        licenses = control.last.licenses
        if len(licenses) and licenses["expired"].any():
            break
    else:
        pytest.fail("no version of the busiest member holds an expired licence")
    expected = licenses["expires_at"] <= pd.Timestamp(control.last.at)
    assert (licenses["expired"] == expected).all()
    assert EXPIRED_NOTE in html.unescape(control.view.value) and "NaN" not in control.view.value


def test_the_control_displays_as_a_widget_with_an_html_fallback(service: downloads.DownloadService) -> None:
    control = time_travel(service, _busiest(service))
    bundle = control._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "plotly-graph-div" in bundle["text/html"] and "Limits in play" in bundle["text/html"]
    assert "es-time-travel" in control.widget._dom_classes


def test_state_at_a_moment_equals_state_at_the_matching_version(service: downloads.DownloadService) -> None:
    member_id = _busiest(service)
    records = service.store.read_stream(f"member-{member_id}")
    moment = records[len(records) // 2].recorded_at
    by_time = state_at(service, member_id, moment)
    by_version = state_at(service, member_id, version=by_time.version)
    assert by_time.member.state == by_version.member.state
    assert state_at(service, member_id, moment - timedelta(days=400)).version == 0
    assert "Licences held" in by_time._repr_html_() and "Limits in play" in by_time._repr_html_()


def test_limits_show_use_against_each_limit(service: downloads.DownloadService) -> None:
    member_id = _busiest(service)
    view = state_at(service, member_id)
    limits = view.limits
    assert list(limits.columns[:5]) == ["rule", "scope", "used", "limit", "free_again_at"]
    assert set(limits["rule"]) <= set(downloads.RULE_IDS)
    plan = limits[limits["rule"] == "devices_per_plan"]
    assert len(plan) == 1 and plan["used"].iloc[0] == len(view.member.devices_holding_downloads())
    assert (limits["at_limit"] == (limits["used"] >= limits["limit"])).all()


def test_decisions_frame_matches_the_members_counts(service: downloads.DownloadService) -> None:
    decisions = decisions_frame(global_log_frame(service.store))
    assert set(decisions["outcome"]) <= {"granted", "denied"} and decisions["device_id"].notna().all()
    member_id = _busiest(service)
    member = service.member(member_id)
    mine = decisions[decisions["member_id"] == member_id]
    assert (mine["outcome"] == "granted").sum() == member.state.grants
    assert (mine["outcome"] == "denied").sum() == member.state.denials


def test_a_busy_member_grows_identically_in_every_store() -> None:
    plain = downloads.DownloadService(MemoryStore(), snapshot_policy=NO_SNAPSHOTS, cache_size=2)
    snapped = downloads.DownloadService(MemoryStore(), snapshot_policy=SnapshotPolicy(every=20), cache_size=2)
    busy = BusyMember([plain, snapped], member_id="b")
    calls: list[tuple[int, int]] = []
    assert busy.grow_to(120, progress=lambda done, total: calls.append((done, total))) >= 120
    first = [(r.event_type, r.data) for r in plain.store.read_stream("member-b")]
    assert first == [(r.event_type, r.data) for r in snapped.store.read_stream("member-b")]
    assert calls and calls[-1][0] == calls[-1][1] and len(busy.seconds) == 2
    registry = downloads.new_registry()
    replayed = measure_load(Repository(plain.store, registry, downloads.MemberAccount), "b", repeats=2)
    snapshot = measure_load(Repository(snapped.store, registry, downloads.MemberAccount), "b", repeats=2)
    assert replayed["replayed"] == replayed["events"] == busy.version
    assert snapshot["snapshot_version"] > 0 and snapshot["replayed"] < 20
    assert isinstance(pd.DataFrame([replayed, snapshot]), pd.DataFrame)
