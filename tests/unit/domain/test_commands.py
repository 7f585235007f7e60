"""Commands: time is aware and normalised to UTC, ids are checked, payloads round-trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from downloads import (
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    ExpireTitleLicenses,
    ForgetMember,
    InvalidCommandError,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    Subscribe,
    command_from_payload,
)
from downloads.commands import COMMAND_TYPES
from es_core import InvalidInputError

from .conftest import T0

EXAMPLES = [
    Subscribe(member_id="ann", at=T0, request_id="r1", plan="basic"),
    ChangePlan(member_id="ann", at=T0, request_id="r2", plan="premium"),
    CancelMembership(member_id="ann", at=T0, request_id="r3"),
    RegisterDevice(member_id="ann", at=T0, request_id="r4", device_id="phone", kind="phone"),
    RemoveDevice(member_id="ann", at=T0, request_id="r5", device_id="phone"),
    AcquireLicense(member_id="ann", at=T0, request_id="r6", device_id="phone", title_id="film-a"),
    RenewLicense(member_id="ann", at=T0, request_id="r7", license_id="lic-1"),
    PlayDownload(member_id="ann", at=T0, request_id="r8", license_id="lic-1"),
    ReleaseLicense(member_id="ann", at=T0, request_id="r9", license_id="lic-1"),
    ExpireTitleLicenses(member_id="ann", at=T0, request_id="r10", title_id="film-a"),
    ForgetMember(member_id="ann", at=T0, request_id="r11"),
]


def test_every_command_type_has_an_example() -> None:
    assert {type(c) for c in EXAMPLES} == set(COMMAND_TYPES)


@pytest.mark.parametrize("command", EXAMPLES, ids=lambda c: type(c).__name__)
def test_a_command_round_trips_through_its_payload(command: object) -> None:
    payload = command.payload()  # type: ignore[attr-defined]
    assert payload["type"] == type(command).__name__
    assert command_from_payload(payload) == command


def test_a_payload_leaves_personal_fields_out_unless_asked() -> None:
    command = RegisterDevice(member_id="ann", at=T0, request_id="r", device_id="phone", device_name="Ann's phone")
    assert "device_name" not in command.payload()
    assert command_from_payload(command.payload()).device_name == ""  # type: ignore[attr-defined]
    assert command_from_payload(command.payload(personal=True)) == command


def test_a_naive_time_is_refused_with_the_domain_error() -> None:
    with pytest.raises(InvalidCommandError, match="timezone-aware") as caught:
        Subscribe(member_id="ann", at=datetime(2026, 1, 1, 12), request_id="r", plan="basic")
    assert isinstance(caught.value, InvalidInputError)


def test_an_offset_time_is_normalised_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    command = Subscribe(member_id="ann", at=datetime(2026, 1, 1, 9, tzinfo=tokyo), request_id="r", plan="basic")
    assert command.at == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert command.at.utcoffset() == timedelta(0)
    assert command.payload()["at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "x" * 101, "tab\there"])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidCommandError, match="member_id"):
        Subscribe(member_id=bad, at=T0, request_id="r", plan="basic")


def test_a_payload_that_is_no_command_is_refused() -> None:
    with pytest.raises(InvalidCommandError):
        command_from_payload({"type": "LaunchRocket", "member_id": "ann"})
    with pytest.raises(InvalidCommandError):
        command_from_payload({"type": "Subscribe", "member_id": "ann", "at": "2026-01-01T00:00:00", "request_id": "r",
                              "plan": "basic"})  # naive time in a stored payload
