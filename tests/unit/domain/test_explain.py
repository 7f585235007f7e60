"""Explaining state: a member's timeline, and the events that made a denial's limit bind."""

from __future__ import annotations

from datetime import timedelta

import pytest

from downloads import ReleaseLicense, RenewLicense, explain_denial, timeline

from .conftest import T0, World

DAY = timedelta(days=1)


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
