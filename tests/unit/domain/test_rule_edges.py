"""Rule edge cases, end to end through the service: rolling-window boundaries, renewals,
slots freed by releases, titles leaving, downgrades, caps, and time zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downloads import ChangePlan, LicenseNotHeldError, ReleaseLicense, RemoveDevice, RenewLicense
from downloads.rules import DEVICES_PER_PLAN, DOWNLOADS_PER_DEVICE, STUDIO_ACTIVE_DOWNLOADS, TITLE_DOWNLOADS_PER_YEAR

from .conftest import T0, YEAR, World, make_rules

US = timedelta(microseconds=1)
DAY = timedelta(days=1)


def three_downloads(world: World, title: str = "film-a") -> list[datetime]:
    times = [T0, T0 + 10 * DAY, T0 + 20 * DAY]
    for at in times:
        assert world.acquire(title, at).granted
    return times


# -- the rolling year ---------------------------------------------------------------------


def test_the_fourth_download_in_a_year_is_denied_until_the_first_falls_out(world: World) -> None:
    world.join()
    first, _, _ = three_downloads(world)
    denied = world.acquire("film-a", first + YEAR - US)
    assert not denied.granted
    assert denied.rule == TITLE_DOWNLOADS_PER_YEAR and denied.limit == 3
    assert denied.retry_at == first + YEAR
    assert "can be downloaded again from 2027-01-05 12:00 UTC" in denied.reason
    assert world.acquire("film-a", first + YEAR).granted  # exactly a year later it no longer counts


def test_retry_at_is_when_enough_downloads_fall_out(world: World) -> None:
    world.join()
    _, second, third = three_downloads(world)
    assert world.acquire("film-a", T0 + YEAR).granted  # first fell out: 3 in the window again
    denied = world.acquire("film-a", T0 + YEAR + DAY)
    assert denied.retry_at == second + YEAR
    denied = world.acquire("film-a", second + YEAR)  # the second fell out, but the year-later one counts
    assert denied.granted
    assert world.acquire("film-a", second + YEAR + US).retry_at == third + YEAR


def test_the_grant_says_how_many_downloads_are_left_and_until_when(world: World) -> None:
    world.join()
    first = world.acquire("film-a", T0)
    assert first.remaining == 2 and "can be downloaded 2 more times before 2027-01-05 12:00 UTC" in first.reason
    world.acquire("film-a", T0 + DAY)
    last = world.acquire("film-a", T0 + 2 * DAY)
    assert last.remaining == 0 and "last download of this title until 2027-01-05 12:00 UTC" in last.reason


def test_titles_are_counted_separately(world: World) -> None:
    world.join()
    three_downloads(world, "film-a")
    assert world.acquire("film-b", T0 + 21 * DAY).granted


def test_denied_attempts_never_count(world: World) -> None:
    world.join()
    first, _, _ = three_downloads(world)
    for n in range(5):
        assert not world.acquire("film-a", T0 + (30 + n) * DAY).granted
    member = world.service.member("ann")
    assert len(member.downloaded("film-a").state.downloads) == 3  # type: ignore[union-attr]
    assert member.state.denials == 5
    assert world.acquire("film-a", first + YEAR).granted  # the denials did not push the date out


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=800 * 24), min_size=1, max_size=8),
    probe=st.integers(min_value=0, max_value=800 * 24),
)
def test_the_decision_matches_counting_by_hand(offsets: list[int], probe: int) -> None:
    """Downloads at arbitrary hours: granted exactly when fewer than 3 granted downloads lie in
    the 365 days before the probe (the window is (probe - 365 d, probe])."""
    world = World()
    world.join()
    granted: list[datetime] = []
    for hours in sorted(offsets):
        at = T0 + timedelta(hours=hours)
        outcome = world.acquire("film-a", at)
        expected = sum(1 for g in granted if at - YEAR < g <= at) < 3
        assert outcome.granted == expected
        if outcome.granted:
            granted.append(at)
    at = T0 + timedelta(hours=max(probe, max(offsets)))
    in_window = sorted(g for g in granted if at - YEAR < g <= at)
    outcome = world.acquire("film-a", at)
    assert outcome.granted == (len(in_window) < 3)
    if not outcome.granted:
        assert outcome.retry_at == in_window[len(in_window) - 3] + YEAR


# -- renewals ----------------------------------------------------------------------------


def test_a_renewal_counts_as_a_download(world: World) -> None:
    world.join()
    lic = world.acquire("film-a", T0).license_id
    assert world.send(RenewLicense, at=T0 + 3 * DAY, license_id=lic).granted
    assert world.send(RenewLicense, at=T0 + 6 * DAY, license_id=lic).granted
    denied = world.send(RenewLicense, at=T0 + 9 * DAY, license_id=lic)
    assert not denied.granted and denied.rule == TITLE_DOWNLOADS_PER_YEAR
    assert denied.license_id == lic
    assert not world.acquire("film-a", T0 + 9 * DAY).granted  # renewals used the title's allowance


def test_when_renewals_do_not_count_only_first_downloads_do() -> None:
    world = World(make_rules(renewal_counts=False))
    world.join()
    lic = world.acquire("film-a", T0).license_id
    for n in range(1, 6):
        renewed = world.send(RenewLicense, at=T0 + 3 * n * DAY, license_id=lic)
        assert renewed.granted and renewed.remaining == 2
    assert world.acquire("film-a", T0 + 20 * DAY).granted
    assert world.acquire("film-a", T0 + 21 * DAY).granted
    assert not world.acquire("film-a", T0 + 22 * DAY).granted


def test_the_same_history_under_a_changed_rule_needs_no_migration() -> None:
    """The facts are the same; only the reading changes."""
    world = World()
    world.join()
    lic = world.acquire("film-a", T0).license_id
    world.send(RenewLicense, at=T0 + 3 * DAY, license_id=lic)
    world.send(RenewLicense, at=T0 + 6 * DAY, license_id=lic)
    assert not world.acquire("film-a", T0 + 7 * DAY).granted
    world.service.rules = make_rules(renewal_counts=False)
    assert world.acquire("film-a", T0 + 8 * DAY).granted


# -- slots ---------------------------------------------------------------------------------


def test_a_released_license_frees_its_device_slot() -> None:
    world = World()
    world.join(plan="basic", devices=("phone", "tablet"))
    lic = world.acquire("show-x", T0, device="phone").license_id
    denied = world.acquire("show-y", T0 + DAY, device="tablet")
    assert not denied.granted and denied.rule == DEVICES_PER_PLAN and denied.limit == 1
    assert denied.retry_at is None and "delete the downloads on 1 other device" in denied.reason
    assert world.acquire("show-y", T0 + DAY, device="phone").granted  # same device: no new slot needed
    world.send(ReleaseLicense, at=T0 + 2 * DAY, license_id=lic)
    assert not world.acquire("show-x", T0 + 2 * DAY, device="tablet").granted  # phone still holds show-y
    phone = [k for k, v in world.service.member("ann").state.licenses.items() if v.device_id == "phone"]
    world.send(ReleaseLicense, at=T0 + 3 * DAY, license_id=phone[0])
    assert world.acquire("show-x", T0 + 3 * DAY, device="tablet").granted


def test_an_expired_window_still_holds_its_slot_until_deleted() -> None:
    world = World()
    world.join(plan="basic", devices=("phone", "tablet"))
    world.acquire("film-a", T0, device="phone")
    assert not world.acquire("show-x", T0 + 30 * DAY, device="tablet").granted


def test_removing_a_device_frees_its_slot() -> None:
    world = World()
    world.join(plan="basic", devices=("phone", "tablet"))
    world.acquire("show-x", T0, device="phone")
    world.send(RemoveDevice, at=T0 + DAY, device_id="phone")
    assert world.acquire("show-x", T0 + DAY, device="tablet").granted


def test_downloads_per_device_and_the_studio_cap() -> None:
    world = World(make_rules(per_device=2, strict_cap=3))
    world.join(plan="premium", devices=("phone", "tablet"))
    assert world.acquire("show-x", T0, device="phone").granted
    assert world.acquire("show-y", T0, device="phone").granted
    full = world.acquire("film-a", T0, device="phone")
    assert full.rule == DOWNLOADS_PER_DEVICE and full.limit == 2
    rules = [world.acquire(t, T0 + DAY, device="tablet").rule for t in ("film-a", "film-b", "film-c")]
    assert rules == [None, None, DOWNLOADS_PER_DEVICE]
    world2 = World(make_rules(per_device=10, strict_cap=2))
    world2.join(plan="premium")
    world2.acquire("film-a", T0)
    world2.acquire("film-b", T0)
    capped = world2.acquire("film-c", T0)
    assert capped.rule == STUDIO_ACTIVE_DOWNLOADS and capped.limit == 2
    assert "Strict Pictures allows 2 downloads at a time" in capped.reason
    assert world2.acquire("show-x", T0).granted  # another studio is not capped


# -- the catalogue -------------------------------------------------------------------------


def test_a_title_leaving_the_catalogue_expires_its_licenses_everywhere() -> None:
    world = World()
    world.join("ann", plan="basic")
    world.join("bob", plan="basic")
    ann = world.acquire("leaving", T0, member="ann").license_id
    world.acquire("leaving", T0, member="bob")
    leaving_on = world.catalogue.title("leaving").leaving_on  # type: ignore[union-attr]
    outcomes = world.service.withdraw_title("leaving", leaving_on, "withdraw-leaving", ["ann"])  # type: ignore[arg-type]
    assert [o.events for o in outcomes] == [1]
    assert world.service.member("ann").state.licenses == {}
    assert world.service.member("bob").state.licenses != {}  # not told yet ...
    late = world.acquire("show-x", leaving_on + DAY, member="bob")  # type: ignore[operator]
    assert late.granted  # ... but caught up by the next command: the slot was freed
    assert world.service.member("bob").state.licenses.keys() == {late.license_id}
    denied = world.acquire("leaving", leaving_on, member="ann")
    assert denied.rule == "catalogue" and "left the catalogue on 2026-03-01 00:00 UTC" in denied.reason
    with pytest.raises(LicenseNotHeldError):  # the expired licence is gone: nothing to renew
        world.service.handle(RenewLicense(member_id="ann", at=leaving_on, request_id="rn", license_id=ann))  # type: ignore[arg-type]


def test_a_title_not_yet_in_the_catalogue_says_when_it_will_be() -> None:
    world = World()
    world.join()
    arrives = datetime(2026, 2, 1, tzinfo=UTC)
    denied = world.acquire("coming", arrives - US)
    assert denied.rule == "catalogue" and denied.retry_at == arrives
    assert world.acquire("coming", arrives).granted


# -- plans -------------------------------------------------------------------------------------


def test_a_downgrade_keeps_downloads_but_new_ones_wait_until_devices_are_cleared() -> None:
    world = World()
    world.join(plan="premium", devices=("phone", "tablet", "laptop"))
    held = {d: world.acquire("show-x", T0, device=d).license_id for d in ("phone", "tablet", "laptop")}
    changed = world.send(ChangePlan, at=T0 + DAY, plan="basic")
    assert changed.granted and "3 devices hold downloads, over the new limit of 1" in changed.reason
    assert len(world.service.member("ann").state.licenses) == 3  # nothing was taken away
    denied = world.acquire("show-y", T0 + DAY, device="phone")  # even on a device that holds downloads
    assert denied.rule == DEVICES_PER_PLAN and "delete the downloads on 2 other devices" in denied.reason
    world.send(ReleaseLicense, at=T0 + 2 * DAY, license_id=held["tablet"])
    assert not world.acquire("show-y", T0 + 2 * DAY, device="phone").granted
    world.send(ReleaseLicense, at=T0 + 2 * DAY, license_id=held["laptop"])
    assert world.acquire("show-y", T0 + 2 * DAY, device="phone").granted


# -- time zones ----------------------------------------------------------------------------------


def test_times_with_offsets_are_the_same_instants() -> None:
    world = World()
    world.join()
    sydney, la = timezone(timedelta(hours=11)), timezone(timedelta(hours=-8))
    first = T0.astimezone(sydney)
    assert world.acquire("film-a", first).granted
    world.acquire("film-a", (T0 + DAY).astimezone(la))
    world.acquire("film-a", (T0 + 2 * DAY).astimezone(sydney))
    year_later_local = (T0 + YEAR).astimezone(la)  # 2027-01-05 04:00 in Los Angeles
    assert year_later_local.hour == 4
    denied = world.acquire("film-a", year_later_local - US)
    assert denied.retry_at == T0 + YEAR and denied.retry_at.tzinfo is UTC  # type: ignore[union-attr]
    assert world.acquire("film-a", year_later_local).granted


def test_catalogue_dates_compare_in_utc_whatever_the_local_date() -> None:
    world = World()
    world.join()
    arrives = datetime(2026, 2, 1, tzinfo=UTC)
    tokyo, new_york = timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))
    early_tokyo = datetime(2026, 2, 1, 8, 59, tzinfo=tokyo)  # already 1 February in Tokyo, still January in UTC
    assert not world.acquire("coming", early_tokyo).granted
    late_new_york = datetime(2026, 1, 31, 19, 0, tzinfo=new_york)  # 31 January in New York, 1 February in UTC
    assert late_new_york == arrives
    assert world.acquire("coming", late_new_york).granted
