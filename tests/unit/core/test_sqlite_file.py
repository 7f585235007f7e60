"""Guarantees the SQLite file keeps by itself, whoever writes to it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from es_core import ConcurrencyError, NewEvent, SQLiteStore

_RAW_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at)"
    " VALUES (?, ?, ?, 'Raw', 1, x'7b7d', x'7b7d', 0)"
)


def _event() -> NewEvent:
    return NewEvent(event_type="Happened", data={"n": 1})


def test_the_file_refuses_a_version_gap_from_any_writer(tmp_path: Path) -> None:
    path = tmp_path / "es.db"
    store = SQLiteStore(path)
    store.append("s", [_event()], 0)
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="version gap"):
        raw.execute(_RAW_INSERT, ("s", 3, uuid.uuid4().bytes))
    raw.execute(_RAW_INSERT, ("s", 2, uuid.uuid4().bytes))  # the next version is fine
    raw.commit()
    raw.close()
    assert [e.version for e in store.read_stream("s")] == [1, 2]
    store.close()


def test_a_file_made_before_the_gap_guard_gets_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER events_without_gaps")
    raw.commit()
    raw.close()
    store = SQLiteStore(path)
    with pytest.raises(ConcurrencyError):
        store.append("s", [_event()], 4)  # the stream is empty: expecting 4 must not write v5
    assert store.stream_version("s") == 0
    store.close()
