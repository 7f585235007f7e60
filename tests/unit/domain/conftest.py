"""A small world for domain tests: a rule set and a catalogue built in code (so expectations
are read off this file, not the data files), a memory store whose clock the test sets, and a
service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from downloads import (
    AcquireLicense,
    Catalogue,
    DownloadService,
    Outcome,
    RegisterDevice,
    RuleSet,
    Studio,
    Subscribe,
    Title,
)
from downloads.rules import LicenseRule, Limits, PlanRule, StudioRule, TitleRule
from es_core import EventStore, open_store

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def make_rules(
    *,
    name: str = "test",
    standard_devices: int = 2,
    title_limit: int = 3,
    renewal_counts: bool = True,
    per_device: int = 100,
    strict_cap: int = 100,
) -> RuleSet:
    return RuleSet(
        name=name,
        plans={
            "basic": PlanRule(devices_with_downloads=1),
            "standard": PlanRule(devices_with_downloads=standard_devices),
            "premium": PlanRule(devices_with_downloads=4),
        },
        limits=Limits(downloads_per_device=per_device, renewal_counts_as_download=renewal_counts),
        license=LicenseRule(duration_hours=168),
        studios={
            "strict": StudioRule(
                title_downloads_per_year=title_limit, active_downloads=strict_cap, license_hours=48,
                expiry_after_first_play_hours=24,
            ),
        },
        titles={"film-c": TitleRule(license_hours=72)},
    )


def make_catalogue() -> Catalogue:
    return Catalogue(
        [Studio("strict", "Strict Pictures"), Studio("open", "Open Television")],
        [
            Title("film-a", "Film A", "strict"),
            Title("film-b", "Film B", "strict"),
            Title("film-c", "Film C", "strict"),
            Title("film-d", "Film D", "strict"),
            Title("show-x", "Show X", "open", kind="series"),
            Title("show-y", "Show Y", "open", kind="series"),
            Title("leaving", "Leaving Soon", "open", leaving_on=datetime(2026, 3, 1, tzinfo=UTC)),
            Title("coming", "Coming Soon", "open", available_from=datetime(2026, 2, 1, tzinfo=UTC)),
        ],
        name="test",
    )


class World:
    """A service over a memory store whose clock (the service's clock too) follows the commands
    (simulated time): a command is decided at its own time unless ``now`` says otherwise."""

    def __init__(self, rules: RuleSet | None = None, *, cache_size: int = 0, store: EventStore | None = None) -> None:
        self.store = store or open_store("memory://")
        self.now = T0
        self.store.clock = lambda: self.now
        self.rules = rules or make_rules()
        self.catalogue = make_catalogue()
        self.service = DownloadService(self.store, self.rules, self.catalogue, cache_size=cache_size)
        self._n = 0

    def rid(self) -> str:
        self._n += 1
        return f"r{self._n}"

    def send(
        self,
        make: Callable[..., object],
        member: str = "ann",
        at: datetime | None = None,
        *,
        now: datetime | None = None,
        **fields: object,
    ) -> Outcome:
        at = at or self.now
        self.now = now or at
        command = make(member_id=member, at=at, request_id=fields.pop("request_id", None) or self.rid(), **fields)
        return self.service.handle(command)  # type: ignore[arg-type]

    def join(self, member: str = "ann", plan: str = "standard", devices: tuple[str, ...] = ("phone",)) -> None:
        self.send(Subscribe, member, plan=plan)
        for device in devices:
            self.send(RegisterDevice, member, device_id=device)

    def acquire(self, title: str, at: datetime | None = None, member: str = "ann", device: str = "phone") -> Outcome:
        return self.send(AcquireLicense, member, at, device_id=device, title_id=title)


@pytest.fixture
def world() -> World:
    return World()
