"""Commands: what a member's device (or the catalogue team) asks the service to do.

Every command carries the member it concerns, its own time ``at`` (aware; normalised to UTC,
a naive time is refused; the service trusts it only within the rules' clock bounds, see
``clock.py``) and a ``request_id`` chosen by the client: re-sending the same request returns the
first answer and writes nothing, and the same id for another request is refused (see
``requests.py``). Commands travel as tagged JSON (``"type"``) in event metadata, so a recorded
store holds its own request history for what-if replays.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, get_args

import msgspec

from .errors import InvalidCommandError

MAX_ID_LENGTH = 100
_BAD_ID = re.compile(r"[\x00-\x20\x7f/]")


class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    member_id: str
    at: datetime
    request_id: str

    #: sent by a member's device, whose clock the service trusts only within the rules' clock
    #: bounds (``clock.py``); False for the service's own catalogue operations
    from_device: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.at, datetime) or self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InvalidCommandError(f"{type(self).__name__}.at must be a timezone-aware datetime, not {self.at!r}")
        if self.at.tzinfo is not UTC:
            msgspec.structs.force_setattr(self, "at", self.at.astimezone(UTC))
        for field in _id_fields(type(self)):
            value = getattr(self, field)
            if type(value) is not str or not value or len(value) > MAX_ID_LENGTH or _BAD_ID.search(value):
                _refuse_id(type(self).__name__, field, value)

    @property
    def name(self) -> str:
        return type(self).__name__

    def payload(self) -> dict[str, Any]:
        """The command as plain JSON-compatible data (with its ``type`` tag)."""
        plain: dict[str, Any] = msgspec.to_builtins(self)
        return plain


class Subscribe(Command, frozen=True, kw_only=True):
    plan: str


class ChangePlan(Command, frozen=True, kw_only=True):
    plan: str


class CancelMembership(Command, frozen=True, kw_only=True):
    pass


class RegisterDevice(Command, frozen=True, kw_only=True):
    device_id: str
    kind: str = ""


class RemoveDevice(Command, frozen=True, kw_only=True):
    device_id: str


class AcquireLicense(Command, frozen=True, kw_only=True):
    device_id: str
    title_id: str


class RenewLicense(Command, frozen=True, kw_only=True):
    license_id: str


class PlayDownload(Command, frozen=True, kw_only=True):
    license_id: str


class ReleaseLicense(Command, frozen=True, kw_only=True):
    license_id: str


class ExpireTitleLicenses(Command, frozen=True, kw_only=True):
    """The per-member part of a title leaving the catalogue: end the member's licences of it.
    Sent by the service (``DownloadService.withdraw_title``), stamped with the leaving date,
    possibly well after it: the clock bounds do not apply."""

    from_device: ClassVar[bool] = False
    title_id: str


AnyCommand = (
    Subscribe
    | ChangePlan
    | CancelMembership
    | RegisterDevice
    | RemoveDevice
    | AcquireLicense
    | RenewLicense
    | PlayDownload
    | ReleaseLicense
    | ExpireTitleLicenses
)
COMMAND_TYPES: tuple[type[Command], ...] = get_args(AnyCommand)


def command_from_payload(payload: Any) -> Command:
    """A command back from its JSON payload (as stored in event metadata)."""
    try:
        command: Command = msgspec.convert(payload, AnyCommand)
        return command
    except msgspec.ValidationError as exc:
        raise InvalidCommandError(f"not a command payload: {exc}") from exc


_ID_FIELDS: dict[type, tuple[str, ...]] = {}


def _id_fields(cls: type[Command]) -> tuple[str, ...]:
    fields = _ID_FIELDS.get(cls)
    if fields is None:
        fields = _ID_FIELDS[cls] = tuple(f for f in cls.__struct_fields__ if f.endswith("_id"))
    return fields


def _refuse_id(command: str, field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidCommandError(f"{command}.{field} must be a non-empty string, not {value!r}")
    raise InvalidCommandError(
        f"{command}.{field} must be at most {MAX_ID_LENGTH} characters without spaces, '/' or control characters"
    )
