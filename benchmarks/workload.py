"""The benchmark workload: the downloads domain's event mix, seeded, and a member-account
aggregate built on es_core that consumes it.

The workload is self-contained (it does not import the ``downloads`` package) so the figures
stay comparable while the domain evolves. Each member's history is a *plan*: a list of commands
that are valid for the account in order (a licence is renewed or released only while held, on a
registered device). The same plan drives es_core, the peer library and the raw floors, so every
implementation stores the same events with the same payloads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import msgspec

from es_core import Aggregate, DomainEvent, EventRegistry, EventSourcingError, applies

DEFAULT_SEED = 20240607
MAX_DEVICES = 5
MAX_ACTIVE_LICENSES = 20  # bounds the state, so snapshots stay the same size as history grows
LICENSE_HOURS = 48

_STUDIOS = (
    "Northlight", "Red Kite", "Harbour Lane", "Blue Fjord", "Ironbark", "Paper Moon",
    "Sable Street", "Tidewater", "Kestrel", "Old Mill", "Quarry Road", "Lanternfish",
)
_ADJECTIVES = ("Silent", "Last", "Hidden", "Golden", "Broken", "Distant", "Crimson", "Endless", "Quiet", "Wild")
_NOUNS = ("Harbour", "Signal", "Orchard", "Frontier", "Archive", "Lighthouse", "Garden", "Mirror", "River", "Summit")
_DEVICE_MODELS = ("phone-a12", "tablet-t7", "phone-x3", "laptop-l5", "tv-box-9")
_PLANS = ("basic", "standard", "premium")
_COUNTRIES = ("GB", "FR", "DE", "NL", "ES", "IT", "SE", "PL")
_RELEASE_REASONS = ("deleted", "watched", "device-reset")

# a small deterministic catalogue: (title id, title, studio)
CATALOGUE: tuple[tuple[str, str, str], ...] = tuple(
    (f"tt{n:05d}", f"The {_ADJECTIVES[n % 10]} {_NOUNS[(n // 10) % 10]} {n // 100 + 1}", _STUDIOS[n % 12])
    for n in range(400)
)


class CommandRefused(EventSourcingError):
    """A workload command that does not fit the account (a bug in the plan generator)."""


# -- commands ---------------------------------------------------------------------------------


class Command(msgspec.Struct, frozen=True, array_like=True):
    """One command of a member's plan: the aggregate method to call and its arguments, which
    are exactly the payload of the event it records."""

    kind: str  # the event type it records
    args: dict[str, str]


METHODS = {
    "AccountOpened": "open_account",
    "DeviceRegistered": "register_device",
    "LicenseAcquired": "acquire_license",
    "LicenseRenewed": "renew_license",
    "LicenseReleased": "release_license",
}


def member_id(index: int, prefix: str = "m") -> str:
    return f"{prefix}{index:06d}"


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def member_plan(index: int, events: int, *, seed: int = DEFAULT_SEED, prefix: str = "m") -> list[Command]:
    """The first ``events`` commands of member ``index``: deterministic for (seed, prefix, index)."""
    rng = random.Random(f"{seed}:{prefix}:{index}")
    mid = member_id(index, prefix)
    clock = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(60 * 24 * 30))
    devices: list[str] = []
    active: dict[str, tuple[str, str]] = {}  # licence id -> (title id, device id)
    plan = [Command("AccountOpened", {
        "member_id": mid, "plan": rng.choice(_PLANS), "country": rng.choice(_COUNTRIES), "opened_at": _iso(clock),
    })]
    serial = 0
    while len(plan) < events:
        clock += timedelta(minutes=rng.randrange(1, 600))
        roll = rng.random()
        if not devices or (roll < 0.08 and len(devices) < MAX_DEVICES):
            device = f"{mid}-d{len(devices) + 1}"
            devices.append(device)
            plan.append(Command("DeviceRegistered", {
                "device_id": device, "model": rng.choice(_DEVICE_MODELS), "registered_at": _iso(clock),
            }))
        elif active and (roll > 0.78 or len(active) >= MAX_ACTIVE_LICENSES):
            license = rng.choice(sorted(active))
            title_id, device = active.pop(license)
            plan.append(Command("LicenseReleased", {
                "license_id": license, "title_id": title_id, "device_id": device,
                "released_at": _iso(clock), "reason": rng.choice(_RELEASE_REASONS),
            }))
        elif active and roll > 0.53:
            license = rng.choice(sorted(active))
            plan.append(Command("LicenseRenewed", {
                "license_id": license, "title_id": active[license][0], "renewed_at": _iso(clock),
                "expires_at": _iso(clock + timedelta(hours=LICENSE_HOURS)),
            }))
        else:
            serial += 1
            license = f"{mid}-l{serial:05d}"
            title_id, title, studio = rng.choice(CATALOGUE)
            device = rng.choice(devices)
            active[license] = (title_id, device)
            plan.append(Command("LicenseAcquired", {
                "license_id": license, "title_id": title_id, "title": title, "studio": studio,
                "device_id": device, "acquired_at": _iso(clock),
                "expires_at": _iso(clock + timedelta(hours=LICENSE_HOURS)),
            }))
    return plan[:events]


def plans(members: int, events: int, *, seed: int = DEFAULT_SEED, prefix: str = "m") -> Iterator[list[Command]]:
    for index in range(members):
        yield member_plan(index, events, seed=seed, prefix=prefix)


def run_command(account: object, command: Command) -> None:
    """Call the account method for ``command``: the same call on es_core's and the peer's account."""
    getattr(account, METHODS[command.kind])(**command.args)


# -- the es_core aggregate ---------------------------------------------------------------------


class AccountOpened(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "AccountOpened"
    member_id: str
    plan: str
    country: str
    opened_at: str


class DeviceRegistered(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "DeviceRegistered"
    device_id: str
    model: str
    registered_at: str


class LicenseAcquired(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "LicenseAcquired"
    license_id: str
    title_id: str
    title: str
    studio: str
    device_id: str
    acquired_at: str
    expires_at: str


class LicenseRenewed(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "LicenseRenewed"
    license_id: str
    title_id: str
    renewed_at: str
    expires_at: str


class LicenseReleased(DomainEvent, frozen=True, kw_only=True):
    event_type: ClassVar[str] = "LicenseReleased"
    license_id: str
    title_id: str
    device_id: str
    released_at: str
    reason: str


EVENT_CLASSES: tuple[type[DomainEvent], ...] = (
    AccountOpened, DeviceRegistered, LicenseAcquired, LicenseRenewed, LicenseReleased,
)


def registry() -> EventRegistry:
    return EventRegistry(*EVENT_CLASSES)


class ActiveLicense(msgspec.Struct):
    title_id: str
    device_id: str
    expires_at: str


class AccountState(msgspec.Struct):
    member_id: str = ""
    plan: str = ""
    country: str = ""
    devices: dict[str, str] = {}  # device id -> model
    active: dict[str, ActiveLicense] = {}  # licence id -> licence
    acquired: int = 0
    renewed: int = 0
    released: int = 0


class MemberAccount(Aggregate[AccountState]):
    """A member's devices and licences: the state a downloads service decides on."""

    aggregate_type = "member"
    State = AccountState

    # commands: check, then record

    def open_account(self, *, member_id: str, plan: str, country: str, opened_at: str) -> None:
        if self.state.member_id:
            raise CommandRefused(f"{self.id} is open already")
        self.record(AccountOpened(member_id=member_id, plan=plan, country=country, opened_at=opened_at))

    def register_device(self, *, device_id: str, model: str, registered_at: str) -> None:
        if device_id in self.state.devices:
            raise CommandRefused(f"{device_id} is registered already")
        self.record(DeviceRegistered(device_id=device_id, model=model, registered_at=registered_at))

    def acquire_license(
        self, *, license_id: str, title_id: str, title: str, studio: str, device_id: str, acquired_at: str,
        expires_at: str,
    ) -> None:
        if device_id not in self.state.devices or license_id in self.state.active:
            raise CommandRefused(f"{license_id} cannot be acquired on {device_id}")
        self.record(LicenseAcquired(
            license_id=license_id, title_id=title_id, title=title, studio=studio, device_id=device_id,
            acquired_at=acquired_at, expires_at=expires_at,
        ))

    def renew_license(self, *, license_id: str, title_id: str, renewed_at: str, expires_at: str) -> None:
        if license_id not in self.state.active:
            raise CommandRefused(f"{license_id} is not held")
        self.record(LicenseRenewed(license_id=license_id, title_id=title_id, renewed_at=renewed_at,
                                   expires_at=expires_at))

    def release_license(
        self, *, license_id: str, title_id: str, device_id: str, released_at: str, reason: str
    ) -> None:
        if license_id not in self.state.active:
            raise CommandRefused(f"{license_id} is not held")
        self.record(LicenseReleased(license_id=license_id, title_id=title_id, device_id=device_id,
                                    released_at=released_at, reason=reason))

    # appliers: state changes only here

    @applies(AccountOpened)
    def _opened(self, e: AccountOpened) -> None:
        s = self.state
        s.member_id, s.plan, s.country = e.member_id, e.plan, e.country

    @applies(DeviceRegistered)
    def _device(self, e: DeviceRegistered) -> None:
        self.state.devices[e.device_id] = e.model

    @applies(LicenseAcquired)
    def _acquired(self, e: LicenseAcquired) -> None:
        self.state.active[e.license_id] = ActiveLicense(e.title_id, e.device_id, e.expires_at)
        self.state.acquired += 1

    @applies(LicenseRenewed)
    def _renewed(self, e: LicenseRenewed) -> None:
        self.state.active[e.license_id].expires_at = e.expires_at
        self.state.renewed += 1

    @applies(LicenseReleased)
    def _released(self, e: LicenseReleased) -> None:
        del self.state.active[e.license_id]
        self.state.released += 1


# -- a projection used by the rebuild figure ---------------------------------------------------


class TitleActivity:
    """Licences acquired per title and studio: a read model fed by the global log.

    ``handle_payload`` takes (event type, payload dict), so the floor and the peer feed it the
    same facts es_core's typed events carry."""

    name = "title-activity"

    def __init__(self) -> None:
        self.by_title: dict[str, int] = {}
        self.by_studio: dict[str, int] = {}
        self.released = 0

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def handle(self, item: object) -> None:  # es_core's Decoded
        event = item.event  # type: ignore[attr-defined]
        if type(event) is LicenseAcquired:
            self._acquired(event.title_id, event.studio)
        elif type(event) is LicenseReleased:
            self.released += 1

    def handle_object(self, event_type: str, event: object) -> None:  # the peer's typed events
        if event_type == "LicenseAcquired":
            self._acquired(event.title_id, event.studio)  # type: ignore[attr-defined]
        elif event_type == "LicenseReleased":
            self.released += 1

    def handle_payload(self, event_type: str, data: dict[str, str]) -> None:
        if event_type == "LicenseAcquired":
            self._acquired(data["title_id"], data["studio"])
        elif event_type == "LicenseReleased":
            self.released += 1

    def _acquired(self, title_id: str, studio: str) -> None:
        self.by_title[title_id] = self.by_title.get(title_id, 0) + 1
        self.by_studio[studio] = self.by_studio.get(studio, 0) + 1

    def summary(self) -> tuple[int, int, int]:
        return sum(self.by_title.values()), len(self.by_title), self.released
