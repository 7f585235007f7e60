"""The rules the talk names, with the shipped data: a per-studio yearly download count, and an
expiry after first play shorter than the licence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from downloads import (
    AcquireLicense,
    DownloadService,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    Subscribe,
    load_catalogue,
    load_rules,
)
from es_core import open_store

T = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


class Shipped:
    """The service with data/rules/default.toml and data/catalogue.toml, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = T
        self.rules, self.catalogue = load_rules(), load_catalogue()
        self.service = DownloadService(open_store("memory://"), self.rules, self.catalogue, clock=lambda: self.now)
        self.n = 0
        self.send(Subscribe, plan="premium")
        self.send(RegisterDevice, device_id="phone")

    def send(self, make: type, at: datetime | None = None, **fields: object):  # type: ignore[no-untyped-def]
        self.now = at or self.now
        self.n += 1
        return self.service.handle(make(member_id="ana", at=self.now, request_id=f"r{self.n}", **fields))


def test_a_meridian_title_expires_a_day_after_its_first_play_not_three_days_after_download() -> None:
    world = Shipped()
    meridian = next(t for t in world.catalogue.titles() if t.studio_id == "meridian" and t.available_at(T))
    got = world.send(AcquireLicense, device_id="phone", title_id=meridian.id)
    held = world.service.member("ana").state.licenses[got.license_id]
    assert held.expires_at == T + 72 * HOUR
    played = world.send(PlayDownload, T + 2 * HOUR, license_id=got.license_id)
    assert played.reason == "playing; licence valid until 2026-03-03 20:00 UTC"
    assert world.service.member("ana").state.licenses[got.license_id].expires_at == T + 26 * HOUR


def test_meridian_allows_twelve_downloads_of_its_titles_a_year_in_all() -> None:
    world = Shipped()
    titles = [t.id for t in world.catalogue.titles() if t.studio_id == "meridian" and t.available_at(T)]
    answers = []
    for n, title in enumerate(titles[:13]):  # thirteen different titles, each well under its own limit
        got = world.send(AcquireLicense, T + n * DAY, device_id="phone", title_id=title)
        answers.append(got)
        if got.granted:
            world.send(ReleaseLicense, T + n * DAY + HOUR, license_id=got.license_id)
    assert [a.granted for a in answers] == [True] * 12 + [False]
    denied = answers[-1]
    assert denied.rule == "studio_downloads_per_year" and denied.limit == 12
    assert denied.retry_at == T + 365 * DAY  # when the first of the twelve stops counting
    assert "Meridian" in denied.reason and "12 times a year in all" in denied.reason
