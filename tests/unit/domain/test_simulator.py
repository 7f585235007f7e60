"""The simulator: same seed, same stream; a plausible, consistent report."""

from __future__ import annotations

from collections import Counter

import pytest

from downloads import ReadModels, simulate
from es_core import InvalidInputError, open_store

from .conftest import T0


def _stream(members: int = 80, days: int = 60, seed: int = 7) -> tuple[list[tuple], object]:  # type: ignore[type-arg]
    store = open_store("memory://")
    report = simulate(store, members=members, days=days, seed=seed, start=T0)
    records = [
        (r.stream_id, r.version, r.position, r.event_id, r.event_type, r.schema_version, r.data, r.metadata,
         r.recorded_at)
        for r in store.read_all()
    ]
    return records, report


def test_the_same_seed_gives_the_same_event_stream() -> None:
    first, report_a = _stream()
    second, report_b = _stream()
    assert len(first) > 400
    assert first == second
    a, b = report_a.as_dict(), report_b.as_dict()  # type: ignore[attr-defined]
    for timing in ("wall_seconds", "events_per_second", "commands_per_second", "peak_rss_mb"):
        a.pop(timing), b.pop(timing)
    assert a == b


def test_another_seed_gives_another_stream() -> None:
    first, _ = _stream(seed=7)
    other, _ = _stream(seed=8)
    assert first != other


def test_recorded_times_follow_simulated_time() -> None:
    records, report = _stream()
    stamps = [r[-1] for r in records]
    assert min(stamps) >= T0 and max(stamps) < report.end  # type: ignore[attr-defined]
    by_stream: dict[str, list] = {}  # type: ignore[type-arg]
    for r in records:
        by_stream.setdefault(r[0], []).append(r[-1])
    assert all(times == sorted(times) for times in by_stream.values())


def test_the_report_adds_up() -> None:
    store = open_store("memory://")
    days: list[int] = []
    report = simulate(store, members=60, days=60, seed=3, start=T0, progress=lambda done, total: days.append(done))
    assert report.events == store.head_position()
    assert report.grants + report.denials == report.commands_by_type["AcquireLicense"] + report.commands_by_type.get(
        "RenewLicense", 0
    )
    assert sum(report.denials_by_rule.values()) == report.denials > 0
    assert report.duplicates_absorbed > 0
    # the simulated clients send only commands that apply, from devices whose clocks may be out
    assert set(report.refused) <= {"ClockSkewError", "LateRequestError"}
    assert sum(report.members_by_behaviour.values()) == 60
    assert days == sorted(days) and days[-1] == 60
    models = ReadModels(store)
    models.catch_up()
    assert sum(models.denials_by_rule.totals().values()) == report.denials
    assert models.downloads_per_title_day.total() == report.grants


def test_a_year_has_a_realistic_mix() -> None:
    report = simulate(open_store("memory://"), members=120, days=365, seed=11, start=T0)
    kinds = Counter(report.commands_by_type)
    downloads_per_member = kinds["AcquireLicense"] / 120
    assert 5 <= downloads_per_member <= 40  # a few a month on average, not a firehose
    assert kinds["ReleaseLicense"] > report.grants / 3  # members delete downloads
    assert {"title_downloads_per_year", "devices_per_plan"} <= set(report.denials_by_rule)
    assert report.titles_withdrawn > 0 and kinds["ExpireTitleLicenses"] > 0


def test_the_store_must_be_empty_and_sizes_positive() -> None:
    store = open_store("memory://")
    simulate(store, members=2, days=2, seed=1, start=T0)
    with pytest.raises(InvalidInputError, match="already holds events"):
        simulate(store, members=2, days=2, seed=1, start=T0)
    with pytest.raises(InvalidInputError):
        simulate(open_store("memory://"), members=0, days=2)


def test_the_report_counts_events_written_not_positions() -> None:
    from downloads import simulate
    from es_core import open_store

    store = open_store("memory://")
    report = simulate(store, members=20, days=20, seed=11)
    assert report.events == sum(store.schema_census().values()) > 0
