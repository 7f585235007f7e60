"""Guarantees the SQLite file keeps by itself, whoever writes to it."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from es_core import ConcurrencyError, NewEvent, SQLiteStore
from es_core.stores.sqlite import PAGE_SIZE, WAL_CHECKPOINT_BYTES

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


def test_a_new_file_uses_small_pages_and_checkpoints_by_wal_bytes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * PAGE_SIZE == WAL_CHECKPOINT_BYTES
    store.close()


def test_an_existing_file_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA page_size = 4096")
    raw.execute("CREATE TABLE unrelated (x)")
    raw.commit()
    raw.close()
    store = SQLiteStore(path)
    store.append("s", [_event()], 0)
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] * 4096 == WAL_CHECKPOINT_BYTES
    assert [e.version for e in store.read_stream("s")] == [1]
    store.close()


def test_remove_files_deletes_the_database_and_its_companions(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    reader = SQLiteStore(path)
    writer = SQLiteStore(path)
    writer.append("s", [_event()], 0)
    companions = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
    assert all(p.exists() for p in companions)  # WAL mode, two connections: all three on disk
    reader.close(), writer.close()
    Path(f"{path}-journal").write_bytes(b"")  # a rollback journal left by another tool
    SQLiteStore.remove_files(path)
    assert list(tmp_path.iterdir()) == []
    SQLiteStore.remove_files(str(path))  # nothing left to remove is fine
    with SQLiteStore(path) as fresh:
        assert fresh.stream_version("s") == 0  # a fresh, empty store
