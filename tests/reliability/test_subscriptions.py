"""The subscription scenarios, small: kills of a live projection, two copies at once, poison
events; and the fold check, shown to catch a skipped, a repeated and an invented effect."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from es_core import SQLiteStore
from reliability.report import ScenarioResult
from reliability.subscriptions import (
    _sqlite_model,
    compare_with_fold,
    run_subscription_copies,
    run_subscription_crash,
    run_subscription_poison,
)


def test_kills_of_a_live_projection_skip_and_repeat_nothing(tmp_path: Path) -> None:
    result = run_subscription_crash(tmp_path, seed=3, kills=6)
    assert result.status == "ok", result.problems or result.error
    assert result.faults == 6
    assert result.acknowledged == result.figures["events_appended"] > 0


def test_two_copies_never_advance_together(tmp_path: Path) -> None:
    result = run_subscription_copies(tmp_path, seed=3, rounds=2)
    assert result.status == "ok", result.problems or result.error
    assert result.figures["owner_handovers"] >= 1


@pytest.mark.parametrize("store_kind", ["sqlite", "memory"])
def test_poison_events_are_parked_or_stop_and_are_applied_after_the_fix(tmp_path: Path, store_kind: str) -> None:
    result = run_subscription_poison(tmp_path, seed=3, store_kind=store_kind, events=120, poison=2)
    assert result.status == "ok", result.problems or result.error
    assert result.acknowledged == 240  # the log, checked once per policy


@pytest.mark.parametrize(
    ("damage", "kind"),
    [
        ("DELETE FROM rel_effects WHERE rowid = (SELECT MIN(rowid) FROM rel_effects)", "unseen"),
        ("UPDATE rel_effects SET n = 2 WHERE rowid = (SELECT MIN(rowid) FROM rel_effects)", "duplicates"),
        ("INSERT INTO rel_effects VALUES ('acct-99', 1, 999999, 1, 'x')", "violations"),
        ("UPDATE rel_totals SET total = total + 1 WHERE rowid = (SELECT MIN(rowid) FROM rel_totals)", "violations"),
    ],
)
def test_the_fold_check_catches_damage(tmp_path: Path, damage: str, kind: str) -> None:
    assert run_subscription_crash(tmp_path, seed=5, kills=1).status == "ok"
    db = tmp_path / "subscription-crash.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute(damage).rowcount == 1
    conn.close()
    result = ScenarioResult("subscription-crash", "sqlite")
    with SQLiteStore(db) as store:
        compare_with_fold(result, store.read_all(), *_sqlite_model(db))
    assert getattr(result, kind) == 1, result.problems
    assert result.status == "failed"


@pytest.mark.cassandra
def test_on_cassandra_poison_and_a_full_redelivery_apply_each_effect_once(tmp_path: Path) -> None:
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip(keyspace="es_reliability_test")
    result = run_subscription_poison(tmp_path, seed=3, store_kind="cassandra", store_url=url, events=60, poison=1)
    assert result.status == "ok", result.problems or result.error
    assert result.acknowledged == 120
