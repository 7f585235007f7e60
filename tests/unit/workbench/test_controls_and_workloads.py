"""The time-travel control (its callbacks are plain functions), limits, the busy member and
load timing, on a small simulated store."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

import downloads
from es_core import NO_SNAPSHOTS, MemoryStore, Repository, SnapshotPolicy
from workbench import BusyMember, decisions_frame, global_log_frame, measure_load, state_at, time_travel


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
    assert "version 3" in control.view.value
    control.version_slider.value = 1
    assert control.last.version == 1 and control.last.member.state.plan is not None
    assert control.widget.children[0] is control.time_slider


def test_state_at_a_moment_equals_state_at_the_matching_version(service: downloads.DownloadService) -> None:
    member_id = _busiest(service)
    records = service.store.read_stream(f"member-{member_id}")
    moment = records[len(records) // 2].recorded_at
    by_time = state_at(service, member_id, moment)
    by_version = state_at(service, member_id, version=by_time.version)
    assert by_time.member.state == by_version.member.state
    assert state_at(service, member_id, moment - timedelta(days=400)).version == 0
    assert "licences" in by_time._repr_html_()


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
