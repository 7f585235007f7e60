"""The crash scenario, small: 10 SIGKILLs mid-append; and its checker, shown to catch damage."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from es_core import SQLiteStore
from reliability.crash import Checker, Ledger, run_crash
from reliability.report import ScenarioResult


def test_ten_kills_lose_nothing_and_leave_no_partial_batch(tmp_path: Path) -> None:
    result = run_crash(tmp_path, seed=3, kills=10, time_limit=90)
    assert result.status == "ok", result.problems or result.error
    assert result.faults == 10
    assert result.acknowledged > 10
    assert result.figures["retries_recognised_as_duplicates"] > 0


Damage = Callable[[Path], tuple[str, tuple[object, ...]]]  # the crash file -> SQL and its parameters


def _tampered(tmp_path: Path, damage: Damage) -> ScenarioResult:
    """Run a few kills, damage the file the way a broken store would, and check again."""
    run = run_crash(tmp_path, seed=5, kills=3, time_limit=60)
    assert run.status == "ok", run.problems
    ledger = Ledger()
    ledger.read((tmp_path / "crash-writers.log").read_text().splitlines())
    statement, params = damage(tmp_path / "crash.db")
    with sqlite3.connect(tmp_path / "crash.db") as db:
        assert db.execute(statement, params).rowcount == 1
    db.close()
    result = ScenarioResult("crash", "sqlite")
    Checker(result).check(tmp_path / "crash.db", ledger, after_kill=99)
    return result


def _newest_event(db: Path) -> tuple[str, tuple[object, ...]]:
    return "DELETE FROM events WHERE position = (SELECT MAX(position) FROM events)", ()


def _second_of_a_batch(db: Path) -> tuple[str, tuple[object, ...]]:
    with SQLiteStore(db) as store:
        position = max(e.position for e in store.read_all() if e.data["index"] == 1)
    return "DELETE FROM events WHERE position = ?", (position,)


def _invented(db: Path) -> tuple[str, tuple[object, ...]]:
    data = json.dumps({"batch": "nobody", "size": 1, "index": 0}).encode()
    return (
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at)"
        " SELECT 'crash-0', MAX(version) + 1, randomblob(16), 'CrashProbe', 1, ?, '{}', 0"
        " FROM events WHERE stream_id = 'crash-0'",  # the next version: the file refuses a gap
        (data,),
    )


def test_the_checker_notices_a_lost_acknowledged_batch(tmp_path: Path) -> None:
    result = _tampered(tmp_path, _newest_event)
    assert result.lost or result.violations, result.problems  # the newest batch is gone or left partial


def test_the_checker_notices_a_partial_batch(tmp_path: Path) -> None:
    result = _tampered(tmp_path, _second_of_a_batch)
    assert any("partial" in p for p in result.problems), result.problems


def test_the_checker_notices_an_invented_event(tmp_path: Path) -> None:
    result = _tampered(tmp_path, _invented)
    assert any("no writer sent" in p for p in result.problems), result.problems
