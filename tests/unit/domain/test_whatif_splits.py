"""The what-if reduction without Dask: replaying each split of a store on its own and combining
the parts gives the single-process report, field by field, however the store is split."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from downloads import load_rules, simulate, whatif
from downloads.whatif import combine, replay
from es_core import EventStore, open_store

from .conftest import make_rules

STRICT = Path(__file__).resolve().parents[2] / "fixtures" / "rules" / "strict.toml"


@pytest.fixture(scope="module")
def recorded() -> EventStore:
    store = open_store("memory://")
    simulate(store, members=40, days=40, seed=5)
    return store


def fields(report: object) -> dict[str, object]:
    plain = report.as_dict()  # type: ignore[attr-defined]
    plain.pop("wall_seconds")
    return plain


@pytest.mark.parametrize("splits", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("max_changes", [0, 2, 1000])
@pytest.mark.parametrize("rules", [lambda: load_rules(STRICT), load_rules], ids=["strict", "default"])
def test_parts_combine_into_the_serial_report(
    recorded: EventStore, splits: int, max_changes: int, rules: Callable[[], object]
) -> None:
    rule_set = rules()
    serial = whatif(recorded, rule_set, max_changes=max_changes)  # type: ignore[arg-type]
    parts = [
        replay(recorded.read_split(s), rule_set, max_changes=max_changes)  # type: ignore[arg-type]
        for s in recorded.split(splits)
    ]
    combined = combine(reversed(parts), rule_set, max_changes=max_changes)  # type: ignore[arg-type]
    assert fields(combined) == fields(serial)


def test_a_strict_replay_changes_enough_to_make_the_comparison_meaningful(recorded: EventStore) -> None:
    report = whatif(recorded, load_rules(STRICT), max_changes=3)
    assert report.newly_denied > 10 and report.changes_truncated and len(report.changes) == 3
    assert len(report.by_member) > 5


def test_combine_measures_wall_time_from_its_start() -> None:
    started = time.perf_counter() - 2.0
    assert combine([], make_rules(), started=started).wall_seconds >= 2.0
