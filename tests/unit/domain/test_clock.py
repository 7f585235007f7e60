"""The service's clock is the authority: given / when / then for each clock bound, and a
property test that no sequence of client timestamps lets a member past a limit, measured in
service time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from downloads import (
    AcquireLicense,
    ClockSkewError,
    DownloadService,
    LateRequestError,
    LicenseAcquired,
    LicenseRenewed,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RenewLicense,
    RuleSet,
    Subscribe,
    new_registry,
    simulate,
)
from downloads.rules import Limits, PlanRule, StudioRule
from es_core import EventStore, open_store

from .conftest import T0, World, make_catalogue, make_rules

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def _head(world: World) -> int:
    return world.store.head_position()


# -- skew: the command's time against the service's clock ---------------------------------


@pytest.mark.parametrize("off", [11 * MINUTE, -11 * MINUTE, 3 * 365 * DAY, -20 * 365 * DAY])
def test_a_command_further_from_the_service_clock_than_the_skew_is_refused(world: World, off: timedelta) -> None:
    world.join()
    head = _head(world)
    with pytest.raises(ClockSkewError, match=r"max_skew_minutes = 10") as refused:
        world.send(AcquireLicense, at=T0 + off, now=T0, device_id="phone", title_id="film-a")
    assert refused.value.bound == "max_skew_minutes" and refused.value.limit == 10 * MINUTE
    assert refused.value.reference == T0 and "ahead of" in str(refused.value) if off > timedelta(0) else True
    assert _head(world) == head  # nothing written


def test_a_command_at_the_skew_bound_is_decided(world: World) -> None:
    world.now = T0 - HOUR
    world.join()
    assert world.send(AcquireLicense, at=T0 - 10 * MINUTE, now=T0, device_id="phone", title_id="film-a").granted
    assert world.send(AcquireLicense, at=T0 + 10 * MINUTE, now=T0, device_id="phone", title_id="film-b").granted


def test_a_licence_runs_on_service_time_whatever_the_client_said(world: World) -> None:
    world.join()
    ahead = world.send(AcquireLicense, at=T0 + 9 * MINUTE, now=T0, device_id="phone", title_id="film-a")
    held = world.service.member("ann").state.licenses[ahead.license_id or ""]
    assert held.acquired_at == T0 and held.expires_at == T0 + 48 * HOUR  # not 9 minutes later
    event = world.store.read_stream("member-ann")[-1]
    assert (event.data["at"], event.data["decided_at"]) == ("2026-01-05T12:09:00Z", "2026-01-05T12:00:00Z")


def test_a_first_play_shortens_the_window_from_when_the_service_heard_of_it(world: World) -> None:
    world.join()
    lic = world.acquire("film-a", T0).license_id
    world.send(PlayDownload, at=T0 + 2 * HOUR - 8 * MINUTE, now=T0 + 2 * HOUR, license_id=lic)
    assert world.service.member("ann").state.licenses[lic or ""].expires_at == T0 + 26 * HOUR  # 2 h + 24 h


def test_a_request_stamped_years_ahead_cannot_wipe_the_count_a_limit_reads(world: World) -> None:
    """Once, history was trimmed relative to the newest client time seen: one request stamped
    years ahead wiped a title's count, and the limit could be bypassed afterwards."""
    world.join(plan="premium", devices=("phone", "tablet"))
    assert all(world.acquire("film-a", T0 + n * MINUTE).granted for n in range(3))  # 3 a year
    with pytest.raises(ClockSkewError):
        world.send(AcquireLicense, at=T0 + 3 * 365 * DAY, now=T0 + 4 * MINUTE, device_id="tablet", title_id="film-a")
    fourth = world.acquire("film-a", T0 + 5 * MINUTE)
    assert not fourth.granted and fourth.rule == "title_downloads_per_year"


# -- lateness: the command's time against the member's latest decision --------------------


def test_a_command_later_than_the_lateness_bound_is_refused_and_writes_nothing(world: World) -> None:
    world.now = T0 - HOUR
    world.join()
    world.send(AcquireLicense, at=T0 + 4 * MINUTE, now=T0, device_id="phone", title_id="film-a")  # a fast clock
    head = _head(world)
    with pytest.raises(LateRequestError, match=r"max_lateness_minutes = 5") as refused:
        world.send(AcquireLicense, at=T0 - 2 * MINUTE, now=T0, device_id="phone", title_id="film-b")  # a slow one
    assert refused.value.bound == "max_lateness_minutes" and refused.value.reference == T0 + 4 * MINUTE
    assert _head(world) == head


def test_a_late_command_inside_the_bound_is_decided_and_counted(world: World) -> None:
    world.join()
    world.send(AcquireLicense, at=T0 + 4 * MINUTE, now=T0, device_id="phone", title_id="film-a")
    late = world.send(AcquireLicense, at=T0, now=T0 + MINUTE, device_id="phone", title_id="film-a")
    assert late.granted and late.remaining == 1  # the second download of a 3-a-year title
    downloads = world.service.member("ann").state.titles["film-a"].downloads
    assert [d.at for d in downloads] == [T0, T0 + MINUTE]  # counted in service time, in order


def test_a_command_dated_before_the_membership_is_refused(world: World) -> None:
    world.join()
    with pytest.raises(LateRequestError, match="before member ann subscribed") as refused:
        world.send(AcquireLicense, at=T0 - MINUTE, now=T0, device_id="phone", title_id="film-a")
    assert refused.value.bound == "member_since"


def test_a_title_must_be_available_at_both_times(world: World) -> None:
    arrives = datetime(2026, 2, 1, tzinfo=UTC)
    world.now = arrives - HOUR
    world.join()
    early_client = world.send(AcquireLicense, at=arrives - MINUTE, now=arrives + MINUTE, device_id="phone",
                              title_id="coming")
    assert not early_client.granted and early_client.rule == "catalogue"
    early_service = world.send(AcquireLicense, at=arrives + MINUTE, now=arrives - MINUTE, device_id="phone",
                               title_id="coming")
    assert not early_service.granted and early_service.rule == "catalogue"


# -- retries, the service's own operations, the fallback ----------------------------------


def test_a_retry_gets_its_first_answer_whatever_its_time(world: World) -> None:
    world.join()
    first = world.acquire("film-a", T0)
    again = world.send(AcquireLicense, at=T0, now=T0 + 3 * HOUR, request_id=first.request_id, device_id="phone",
                       title_id="film-a")
    assert again.duplicate and again.license_id == first.license_id


def test_a_withdrawal_stamped_with_a_past_leaving_date_is_not_held_to_the_clock() -> None:
    world = World()
    world.join()
    lic = world.acquire("leaving", T0).license_id
    leaving_on = datetime(2026, 3, 1, tzinfo=UTC)
    world.now = leaving_on + 3 * DAY  # the fan-out runs days after the title left
    [done] = world.service.withdraw_title("leaving", leaving_on, "withdraw", ["ann"])
    assert done.events == 1 and lic not in world.service.member("ann").state.licenses
    [again] = world.service.withdraw_title("leaving", leaving_on, "withdraw", ["ann"])  # the fan-out re-run
    assert again.granted and again.events == 0


# -- the simulator and the what-if replay -------------------------------------------------


def test_simulated_decisions_are_on_service_time_within_the_bounds() -> None:
    store = open_store("memory://")
    report = simulate(store, members=80, days=30, seed=2)
    assert report.refused.get("ClockSkewError", 0) > 0  # some devices' clocks are days or years out
    registry = new_registry()
    skews = [
        abs(e.at - e.decided_at)
        for item in registry.decode_all(store.read_all())
        if isinstance(e := item.event, LicenseAcquired | LicenseRenewed)
    ]
    assert skews and max(skews) <= 10 * MINUTE and any(skews)  # some clocks a few minutes out, none further


def test_a_whatif_replays_on_the_recorded_service_clock() -> None:
    from downloads import whatif

    store = open_store("memory://")
    simulate(store, members=60, days=30, seed=2)
    scratch = open_store("memory://")
    same = whatif(store, DownloadService(store).rules, scratch=scratch)
    assert (same.newly_granted, same.newly_denied, same.rule_changed) == (0, 0, 0)
    assert same.not_applicable == {}  # no request meets the clock bounds differently on replay
    # the replay takes members whole, one after another (one split of the store), so compare
    # each member's decisions in their own stream's order
    def decisions(s: EventStore) -> dict[tuple[str, int], object]:
        return {(r.stream_id, r.version): r.data["decided_at"] for r in s.read_all() if "decided_at" in r.data}

    decided = decisions(store)
    assert decided and decisions(scratch) == decided


# -- the property: no client timestamps get past a limit ----------------------------------

WINDOW = 7  # days: a short rolling window, so that a few steps cross it


def _tight_rules() -> RuleSet:
    base = make_rules(title_limit=2, strict_cap=3)
    return RuleSet(
        name="tight",
        plans={"standard": PlanRule(devices_with_downloads=2)},
        limits=Limits(rolling_year_days=WINDOW, downloads_per_device=4),
        license=base.license,
        studios={**base.studios, "open": StudioRule(downloads_per_year=3)},
        titles=base.titles,
    )


OFFSETS = st.sampled_from(
    [timedelta(0), 3 * MINUTE, -3 * MINUTE, 9 * MINUTE, -9 * MINUTE, 2 * HOUR, -2 * DAY, 400 * DAY, -3650 * DAY]
)
STEPS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3 * 24 * 60),  # minutes the service's clock moves on
        OFFSETS,  # how far the device's clock is out
        st.sampled_from(["acquire", "renew", "release"]),
        st.sampled_from(["film-a", "film-b", "show-x", "show-y"]),
        st.sampled_from(["phone", "tablet", "tv"]),
        st.integers(min_value=0, max_value=7),  # which held licence
    ),
    min_size=1,
    max_size=40,
)


def _peak(times: list[datetime], window: timedelta) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t - window < u <= t) for t in times), default=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
@example([(0, -3 * MINUTE, "acquire", "film-a", "phone", 0)])  # inside the skew, yet before the membership
def test_no_client_timestamps_let_a_member_exceed_a_limit_in_service_time(steps) -> None:  # type: ignore[no-untyped-def]
    rules, catalogue = _tight_rules(), make_catalogue()
    now = [T0]
    store = open_store("memory://")
    service = DownloadService(store, rules, catalogue, clock=lambda: now[-1])
    service.handle(Subscribe(member_id="m", at=T0, request_id="join", plan="standard"))
    for device in ("phone", "tablet", "tv"):
        service.handle(RegisterDevice(member_id="m", at=T0, request_id=device, device_id=device))
    for n, (minutes, offset, action, title, device, pick) in enumerate(steps):
        now.append(now[-1] + timedelta(minutes=minutes))
        at, rid = now[-1] + offset, f"s{n}"
        held = sorted(service.member("m").state.licenses)
        try:
            if action == "acquire":
                service.handle(AcquireLicense(member_id="m", at=at, request_id=rid, device_id=device, title_id=title))
            elif held and action == "renew":
                service.handle(RenewLicense(member_id="m", at=at, request_id=rid, license_id=held[pick % len(held)]))
            elif held:
                service.handle(ReleaseLicense(member_id="m", at=at, request_id=rid, license_id=held[pick % len(held)]))
        except (ClockSkewError, LateRequestError) as refused:
            if refused.bound == "member_since":  # a licence is never dated before the membership
                assert action in ("acquire", "renew") and at < T0
            else:  # otherwise only a clock out by more than the bounds allow is refused
                assert abs(offset) > 4 * MINUTE
        state = service.member("m").state
        assert sum(1 for d in state.devices.values() if d.held) <= 2
        assert all(d.held <= 4 for d in state.devices.values())
        assert state.studio_active.get("strict", 0) <= 3
    decided: dict[str, list[tuple[datetime, str]]] = {}
    for item in new_registry().decode_all(store.read_all()):
        e = item.event
        if isinstance(e, LicenseAcquired | LicenseRenewed):
            studio = catalogue.title(e.title_id).studio_id  # type: ignore[union-attr]
            decided.setdefault(studio, []).append((e.decided_at, e.title_id))
            assert e.expires_at - e.decided_at <= rules.license_duration(studio, e.title_id)
            assert e.decided_at in now  # every window runs on the service's clock
    window = timedelta(days=WINDOW)
    for studio, downloads in decided.items():
        for title in {t for _, t in downloads}:
            limit = rules.title_limit(studio, title)
            if limit is not None:
                assert _peak([at for at, t in downloads if t == title], window) <= limit
        studio_limit = rules.studio_year_limit(studio)
        if studio_limit is not None:
            assert _peak([at for at, _ in downloads], window) <= studio_limit
