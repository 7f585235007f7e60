"""Given / when / then, one command at a time, on the member aggregate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from downloads import (
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    CommandRefusedError,
    DeviceRegistered,
    DeviceRemoved,
    DownloadDenied,
    ExpireTitleLicenses,
    InvalidCommandError,
    LicenseAcquired,
    LicenseExpired,
    LicenseNotHeldError,
    LicensePlayed,
    LicenseReleased,
    LicenseRenewed,
    MemberAccount,
    MembershipCancelled,
    MemberSubscribed,
    NotSubscribedError,
    PlanChanged,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    Subscribe,
    UnknownDeviceError,
    license_id_for,
)
from downloads.commands import Command
from es_core.testing import given

from .conftest import T0, YEAR, make_catalogue, make_rules

RULES, CATALOGUE = make_rules(), make_catalogue()
JUDGED = {"rules": RULES.name, "rules_digest": RULES.digest}  # every decision names its rule set
H = timedelta(hours=1)
LIC = license_id_for("test", "get-a")
JOINED = (
    MemberSubscribed(plan="standard", at=T0, request_id="s"),
    DeviceRegistered(device_id="phone", kind="phone", at=T0, request_id="d1"),
    DeviceRegistered(device_id="tablet", kind="tablet", at=T0, request_id="d2"),
)
HOLDING_A = (
    *JOINED,
    LicenseAcquired(license_id=LIC, device_id="phone", title_id="film-a", studio_id="strict", at=T0, decided_at=T0,
                    expires_at=T0 + 48 * H, remaining=2, resets_at=T0 + YEAR, request_id="get-a", **JUDGED),
)


def run(command: Command):  # type: ignore[no-untyped-def]
    """Decide ``command`` with the service's clock at the command's own time."""
    return lambda member: member.execute(command, RULES, CATALOGUE, command.at)


def test_subscribe() -> None:
    given(MemberAccount).when(run(Subscribe(member_id="test", at=T0, request_id="s", plan="standard"))).then(
        MemberSubscribed(plan="standard", at=T0, request_id="s")
    )


def test_subscribe_twice_is_refused_and_an_unknown_plan_is_invalid() -> None:
    given(MemberAccount, *JOINED).when(run(Subscribe(member_id="test", at=T0, request_id="x", plan="basic"))) \
        .then_raises(CommandRefusedError, "already subscribed")
    given(MemberAccount).when(run(Subscribe(member_id="test", at=T0, request_id="x", plan="gold"))) \
        .then_raises(InvalidCommandError, "unknown plan 'gold'")


def test_register_and_remove_a_device() -> None:
    given(MemberAccount, *JOINED).when(
        run(RegisterDevice(member_id="test", at=T0 + H, request_id="d3", device_id="laptop", kind="laptop"))
    ).then(DeviceRegistered(device_id="laptop", kind="laptop", at=T0 + H, request_id="d3"))
    again = RegisterDevice(member_id="test", at=T0, request_id="x", device_id="phone")
    given(MemberAccount, *JOINED).when(run(again)).then_raises(CommandRefusedError, "already registered")


def test_removing_a_device_releases_its_downloads_first() -> None:
    member = given(MemberAccount, *HOLDING_A).when(
        run(RemoveDevice(member_id="test", at=T0 + H, request_id="rm", device_id="phone"))
    ).then(
        LicenseReleased(license_id=LIC, title_id="film-a", reason="device_removed", at=T0 + H, request_id="rm"),
        DeviceRemoved(device_id="phone", at=T0 + H, request_id="rm"),
    )
    assert member.state.licenses == {} and member.state.studio_active == {}
    given(MemberAccount, *JOINED).when(run(RemoveDevice(member_id="test", at=T0, request_id="x", device_id="tv"))) \
        .then_raises(UnknownDeviceError)


def test_acquire_grants_a_license_with_the_studio_window() -> None:
    lic = license_id_for("test", "a1")
    member = given(MemberAccount, *JOINED).when(
        run(AcquireLicense(member_id="test", at=T0, request_id="a1", device_id="phone", title_id="film-a"))
    ).then(
        LicenseAcquired(license_id=lic, device_id="phone", title_id="film-a", studio_id="strict", at=T0, decided_at=T0,
                        expires_at=T0 + 48 * H, remaining=2, resets_at=T0 + YEAR, request_id="a1", **JUDGED)
    )
    assert member.devices_holding_downloads() == ["phone"]
    assert member.state.studio_active == {"strict": 1}
    downloaded = member.downloaded("film-a")
    assert downloaded is not None and len(downloaded.state.downloads) == 1


def test_acquire_of_an_unlimited_title_says_nothing_about_remaining() -> None:
    lic = license_id_for("test", "a1")
    given(MemberAccount, *JOINED).when(
        run(AcquireLicense(member_id="test", at=T0, request_id="a1", device_id="phone", title_id="show-x"))
    ).then(
        LicenseAcquired(license_id=lic, device_id="phone", title_id="show-x", studio_id="open", at=T0, decided_at=T0,
                        expires_at=T0 + 168 * H, request_id="a1", **JUDGED)
    )


def test_acquire_denied_is_recorded_as_a_denial() -> None:
    at = T0 + H
    given(MemberAccount, *JOINED).when(
        run(AcquireLicense(member_id="test", at=at, request_id="a1", device_id="phone", title_id="coming"))
    ).then(
        DownloadDenied(action="acquire", rule="catalogue", retry_at=CATALOGUE.title("coming").available_from,  # type: ignore[union-attr]
                       reason="'Coming Soon' is not in the catalogue yet; "
                       "it can be downloaded from 2026-02-01 00:00 UTC",
                       device_id="phone", title_id="coming", studio_id="open", at=at, decided_at=at, request_id="a1",
                       **JUDGED)
    )


def test_acquire_refusals() -> None:
    cmd = AcquireLicense(member_id="test", at=T0, request_id="a", device_id="phone", title_id="film-a")
    given(MemberAccount).when(run(cmd)).then_raises(NotSubscribedError)
    given(MemberAccount, *JOINED).when(run(AcquireLicense(member_id="test", at=T0, request_id="a", device_id="tv",
                                                          title_id="film-a"))).then_raises(UnknownDeviceError)
    given(MemberAccount, *JOINED).when(run(AcquireLicense(member_id="test", at=T0, request_id="a", device_id="phone",
                                                          title_id="nope"))).then_raises(InvalidCommandError, "nope")


def test_renew_pushes_the_expiry_out_from_now() -> None:
    at = T0 + 50 * H  # after the 48 h window ended
    member = given(MemberAccount, *HOLDING_A).when(
        run(RenewLicense(member_id="test", at=at, request_id="rn", license_id=LIC))
    ).then(
        LicenseRenewed(license_id=LIC, title_id="film-a", at=at, decided_at=at, expires_at=at + 48 * H, remaining=1,
                       resets_at=T0 + YEAR, request_id="rn", **JUDGED)
    )
    assert member.state.licenses[LIC].renewals == 1
    given(MemberAccount, *JOINED).when(run(RenewLicense(member_id="test", at=at, request_id="x", license_id="lic-0"))) \
        .then_raises(LicenseNotHeldError)


def test_first_play_shortens_the_expiry_and_a_second_play_records_nothing() -> None:
    at = T0 + 2 * H
    played = LicensePlayed(license_id=LIC, title_id="film-a", at=at, decided_at=at, expires_at=at + 24 * H,
                           request_id="p1", **JUDGED)
    given(MemberAccount, *HOLDING_A).when(run(PlayDownload(member_id="test", at=at, request_id="p1", license_id=LIC))) \
        .then(played)
    given(MemberAccount, *HOLDING_A, played).when(
        run(PlayDownload(member_id="test", at=at + H, request_id="p2", license_id=LIC))
    ).then()
    given(MemberAccount, *HOLDING_A).when(
        run(PlayDownload(member_id="test", at=T0 + 49 * H, request_id="p3", license_id=LIC))
    ).then_raises(CommandRefusedError, "renew it to play")


def test_release() -> None:
    member = given(MemberAccount, *HOLDING_A).when(
        run(ReleaseLicense(member_id="test", at=T0 + H, request_id="rl", license_id=LIC))
    ).then(LicenseReleased(license_id=LIC, title_id="film-a", reason="deleted", at=T0 + H, request_id="rl"))
    assert member.devices_holding_downloads() == []
    assert member.downloaded("film-a").state.downloads  # type: ignore[union-attr]  # the count outlives the licence


def test_change_plan_records_how_many_devices_hold_downloads() -> None:
    given(MemberAccount, *HOLDING_A).when(run(ChangePlan(member_id="test", at=T0 + H, request_id="cp", plan="basic"))) \
        .then(PlanChanged(old_plan="standard", new_plan="basic", device_limit=1, devices_holding_downloads=1,
                          at=T0 + H, request_id="cp"))
    same = ChangePlan(member_id="test", at=T0, request_id="cp", plan="standard")
    given(MemberAccount, *JOINED).when(run(same)).then()  # nothing to record


def test_cancel_releases_every_download() -> None:
    member = given(MemberAccount, *HOLDING_A).when(run(CancelMembership(member_id="test", at=T0 + H, request_id="c"))) \
        .then(
            LicenseReleased(
                license_id=LIC, title_id="film-a", reason="membership_cancelled", at=T0 + H, request_id="c"
            ),
            MembershipCancelled(at=T0 + H, request_id="c"),
        )
    assert member.state.plan is None


def test_expire_title_licenses_ends_them_at_the_leaving_moment() -> None:
    leaving_on = CATALOGUE.title("leaving").leaving_on  # type: ignore[union-attr]
    lic = license_id_for("test", "get-l")
    holding = (*JOINED, LicenseAcquired(license_id=lic, device_id="phone", title_id="leaving", studio_id="open",
                                        at=T0, decided_at=T0, expires_at=T0 + 168 * H, request_id="get-l", **JUDGED))
    member = given(MemberAccount, *holding).when(
        run(ExpireTitleLicenses(member_id="test", at=leaving_on, request_id="w", title_id="leaving"))  # type: ignore[arg-type]
    ).then(LicenseExpired(license_id=lic, title_id="leaving", at=leaving_on))  # type: ignore[arg-type]
    assert member.state.licenses == {} and member.devices_holding_downloads() == []
    given(MemberAccount, *holding).when(
        run(ExpireTitleLicenses(member_id="test", at=T0, request_id="w", title_id="leaving"))
    ).then_raises(InvalidCommandError, "has not left")


def test_any_command_after_a_title_left_catches_its_licenses_up() -> None:
    leaving_on = CATALOGUE.title("leaving").leaving_on  # type: ignore[union-attr]
    lic = license_id_for("test", "get-l")
    holding = (*JOINED, LicenseAcquired(license_id=lic, device_id="phone", title_id="leaving", studio_id="open",
                                        at=T0, decided_at=T0, expires_at=T0 + 168 * H, request_id="get-l", **JUDGED))
    later = leaving_on + timedelta(days=3)  # type: ignore[operator]
    given(MemberAccount, *holding).when(
        run(RegisterDevice(member_id="test", at=later, request_id="d3", device_id="laptop"))
    ).then(
        LicenseExpired(license_id=lic, title_id="leaving", at=leaving_on),  # type: ignore[arg-type]
        DeviceRegistered(device_id="laptop", at=later, request_id="d3"),
    )


@pytest.mark.parametrize("plan", ["basic", "premium"])
def test_a_subscription_can_start_on_any_plan(plan: str) -> None:
    member = given(MemberAccount).when(run(Subscribe(member_id="test", at=T0, request_id="s", plan=plan))) \
        .then(MemberSubscribed(plan=plan, at=T0, request_id="s"))
    assert member.state.plan == plan
