"""Explaining state: a member's timeline, and the events that made a denial's limit bind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from downloads import AcquireLicense, ReleaseLicense, RenewLicense, explain_denial, timeline

from .conftest import T0, World, make_rules

DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)


def test_the_timeline_lists_every_event_in_order_and_filters_by_aggregate(world: World) -> None:
    world.join()
    a = world.acquire("film-a", T0 + DAY).license_id
    world.acquire("show-x", T0 + DAY)
    world.send(RenewLicense, at=T0 + 4 * DAY, license_id=a)
    entries = timeline(world.store, "ann")
    assert [e.version for e in entries] == list(range(1, 6))
    assert [e.event_type for e in entries] == [
        "MemberSubscribed", "DeviceRegistered", "LicenseAcquired", "LicenseAcquired", "LicenseRenewed",
    ]
    license = timeline(world.store, "ann", aggregate_id=a)
    assert [e.event_type for e in license] == ["LicenseAcquired", "LicenseRenewed"]
    assert [e.version for e in timeline(world.store, "ann", aggregate_id="show-x")] == [4]
    assert "downloaded film-a on phone" in license[0].summary


def test_a_title_limit_denial_is_explained_by_the_downloads_in_the_window(world: World) -> None:
    world.now = T0 - 401 * DAY
    world.join()
    old = world.acquire("film-a", T0 - 400 * DAY)  # outside the window: not a cause
    lic = world.acquire("film-a", T0).license_id
    world.send(RenewLicense, at=T0 + 3 * DAY, license_id=lic)
    world.acquire("film-a", T0 + 5 * DAY)
    world.acquire("show-x", T0 + 5 * DAY)
    denied = world.acquire("film-a", T0 + 6 * DAY)
    assert not denied.granted and old.granted
    explanation = explain_denial(world.store, "ann", denied.request_id, rules=world.rules)
    assert explanation.rule == "title_downloads_per_year" and explanation.limit == 3
    assert [c.event_type for c in explanation.causes] == ["LicenseAcquired", "LicenseRenewed", "LicenseAcquired"]
    assert all(c.title_id == "film-a" for c in explanation.causes)
    assert explanation.retry_at == T0 + timedelta(days=365)
    assert "because:" in explanation.text


def test_a_device_limit_denial_is_explained_by_the_plan_and_the_other_devices(world: World) -> None:
    world.join(plan="basic", devices=("phone", "tablet"))
    released = world.acquire("show-y", T0, device="phone")
    world.send(ReleaseLicense, at=T0 + DAY, license_id=released.license_id)
    held = world.acquire("show-x", T0 + DAY, device="phone")
    denied = world.acquire("film-a", T0 + 2 * DAY, device="tablet")
    explanation = explain_denial(world.store, "ann", denied.request_id, rules=world.rules)
    assert [c.event_type for c in explanation.causes] == ["MemberSubscribed", "LicenseAcquired"]
    assert explanation.causes[1].aggregate_id == held.license_id  # the released one is no cause


def test_explaining_a_request_that_was_not_denied_is_an_error(world: World) -> None:
    world.join()
    granted = world.acquire("show-x")
    with pytest.raises(LookupError):
        explain_denial(world.store, "ann", granted.request_id)


def test_a_denial_is_explained_with_the_limits_in_force_when_it_was_decided() -> None:
    strict = make_rules(name="strict-then", title_limit=2)
    world = World(strict)
    world.join()
    for n in range(2):
        world.acquire("film-a", T0 + n * DAY)
    denied = world.acquire("film-a", T0 + 2 * DAY)
    today = make_rules(name="default-now", title_limit=5, renewal_counts=False)  # the file has changed since
    explanation = explain_denial(world.store, "ann", denied.request_id, rules=[today, strict])
    assert explanation.rules == strict.label == explanation.causes_read_with
    assert explanation.limit == 2 and len(explanation.causes) == 2
    assert f"judged under {strict.label} (limit 2)" in explanation.text
    unknown = explain_denial(world.store, "ann", denied.request_id, rules=today)  # the old rule set is not at hand
    assert unknown.rules == strict.label and unknown.causes_read_with == today.label
    assert "causes read with default-now@" in unknown.text and unknown.limit == 2  # the recorded limit, still


def test_the_timeline_names_the_rules_that_judged_each_decision_and_both_times(world: World) -> None:
    world.join()
    world.send(AcquireLicense, at=T0 + 3 * MINUTE, now=T0, device_id="phone", title_id="film-a")
    entry = timeline(world.store, "ann")[-1]
    assert entry.rules == world.rules.label and entry.at == T0 + 3 * MINUTE and entry.recorded_at == T0
    assert timeline(world.store, "ann")[0].rules is None  # a subscription is no rule's decision
