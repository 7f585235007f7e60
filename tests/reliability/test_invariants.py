"""The per-member checker the scenarios end with: it must see a broken limit at any version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from downloads import (
    AcquireLicense,
    LicenseAcquired,
    RegisterDevice,
    Subscribe,
    load_catalogue,
    load_rules,
    new_registry,
)
from es_core import open_store
from reliability.invariants import STUDIO_YEAR, TITLE_YEAR, check_member_stream, window_peak
from reliability.workload import ScenarioService, world

T = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_window_peak_counts_downloads_within_one_window() -> None:
    year = timedelta(days=365)
    assert window_peak([], year) == 0
    assert window_peak([T, T + DAY, T + 2 * DAY], year) == 3
    assert window_peak([T, T + year, T + year + DAY], year) == 2  # the first stops counting at exactly t + window
    assert window_peak([T + 2 * DAY, T, T + DAY], timedelta(days=2)) == 2


def test_a_clean_history_has_no_violations() -> None:
    rules, catalogue = world()
    store = open_store("memory://")
    service = ScenarioService(store, rules, catalogue)
    service.handle(Subscribe(member_id="m", at=T, request_id="r1", plan="standard"))
    service.handle(RegisterDevice(member_id="m", at=T, request_id="r2", device_id="phone"))
    for i in range(4):  # the 4th is denied
        service.handle(
            AcquireLicense(
                member_id="m", at=T + i * DAY, request_id=f"a{i}", device_id="phone", title_id="after-circuit"
            )
        )
    check = check_member_stream(store, "m", new_registry(), rules, catalogue)
    assert (check.violations, check.duplicates, check.gaps) == ([], [], [])
    assert check.events == 6


def test_a_fourth_download_in_a_year_is_a_violation_at_its_version() -> None:
    rules, catalogue = world()
    store = open_store("memory://")
    service = ScenarioService(store, rules, catalogue)
    service.handle(Subscribe(member_id="m", at=T, request_id="r1", plan="premium"))
    service.handle(RegisterDevice(member_id="m", at=T, request_id="r2", device_id="phone"))
    registry = new_registry()
    for i in range(4):  # written past the service, as a broken writer would
        event = LicenseAcquired(
            license_id=f"l{i}",
            device_id="phone",
            title_id="after-circuit",
            studio_id="meridian",
            at=T + i * DAY,
            decided_at=T + i * DAY,
            expires_at=T + (i + 3) * DAY,
            request_id=f"x{i}",
        )
        store.append("member-m", [registry.encode(event, metadata={"request_id": f"x{i}"})])
    check = check_member_stream(store, "m", registry, rules, catalogue)
    assert len(check.violations) == 1
    category, text = check.violations[0]
    assert category == TITLE_YEAR
    assert "member-m v6" in text and "4 downloads of after-circuit" in text


def test_a_thirteenth_meridian_download_in_a_year_is_a_violation() -> None:
    rules, catalogue = load_rules(), load_catalogue()  # the shipped rules: 12 of Meridian's titles a year
    store = open_store("memory://")
    service = ScenarioService(store, rules, catalogue)
    service.handle(Subscribe(member_id="m", at=T, request_id="r1", plan="premium"))
    service.handle(RegisterDevice(member_id="m", at=T, request_id="r2", device_id="phone"))
    registry = new_registry()
    titles = [t.id for t in catalogue.titles() if t.studio_id == "meridian" and t.available_at(T)][:13]
    for i, title in enumerate(titles):  # written past the service, as a broken writer would
        event = LicenseAcquired(
            license_id=f"l{i}", device_id="phone", title_id=title, studio_id="meridian", at=T + i * DAY,
            decided_at=T + i * DAY, expires_at=T + (i + 3) * DAY, request_id=f"x{i}",
        )
        store.append("member-m", [registry.encode(event, metadata={"request_id": f"x{i}"})])
    check = check_member_stream(store, "m", registry, rules, catalogue)
    assert [c for c, _ in check.violations] == [STUDIO_YEAR]
    assert "13 downloads of studio meridian's titles (limit 12)" in check.violations[0][1]
