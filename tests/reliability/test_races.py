"""Races, small: 8 processes x a few commands about the same members, on SQLite and Cassandra."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from downloads import AcquireLicense, RegisterDevice, Subscribe
from es_core import open_store
from reliability.races import run_races, sqlite_url
from reliability.workload import ScenarioService, world


def _check(result: object) -> None:
    r = result  # type: ignore[assignment]
    assert not r.error, r.error  # type: ignore[attr-defined]
    assert (r.lost, r.duplicates) == (0, 0), r.problems  # type: ignore[attr-defined]
    late = [p for p in r.problems if "stamped" in p]  # type: ignore[attr-defined]
    others = [p for p in r.problems if p not in late]  # type: ignore[attr-defined]
    assert not others, others
    assert r.figures["processes"] == 8  # type: ignore[attr-defined]


def test_eight_processes_on_sqlite(tmp_path: Path) -> None:
    result = run_races(sqlite_url(tmp_path), seed=11, processes=8, commands=8, time_limit=120)
    _check(result)
    assert result.acknowledged > 8


@pytest.mark.cassandra
def test_eight_processes_on_cassandra() -> None:
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip("es_reliability", consistency="QUORUM")
    _check(run_races(url, seed=11, processes=8, commands=5, time_limit=240, store_label="cassandra"))


def test_a_late_decided_download_never_exceeds_the_yearly_limit() -> None:
    """Two servers: one decides a download stamped 12:00:00.005 after three others stamped a few
    milliseconds later were stored. The title allows 3 downloads a year."""
    rules, catalogue = world()
    service = ScenarioService(open_store("memory://"), rules, catalogue)  # each decided at its own time
    t = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    ms = timedelta(milliseconds=1)
    service.handle(Subscribe(member_id="m", at=t, request_id="join", plan="premium"))
    for device in ("a", "b", "c", "d"):
        service.handle(RegisterDevice(member_id="m", at=t, request_id=f"reg-{device}", device_id=device))
    for i, device in enumerate(("a", "b", "c")):
        assert service.handle(
            AcquireLicense(
                member_id="m", at=t + (10 + i) * ms, request_id=f"x{i}", device_id=device, title_id="after-circuit"
            )
        ).granted
    late = service.handle(
        AcquireLicense(member_id="m", at=t + 5 * ms, request_id="late", device_id="d", title_id="after-circuit")
    )
    assert not late.granted, "a 4th download of a 3-a-year title within the same second"
