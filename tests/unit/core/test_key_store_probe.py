"""``EventStore.has_key_store`` asks without writing: a store that was never protected keeps its
schema (a read-only command, such as ``python -m downloads whatif``, must not create tables)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from es_core import LocalKeyEncryptionKey, NewEvent, PersonalData, open_store

PERSONAL = PersonalData({"DeviceRegistered": ("device_name",)})


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_asking_a_never_protected_sqlite_store_creates_no_key_tables(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with open_store(f"sqlite:///{path}") as store:
        store.append("member-1", [NewEvent(event_type="Joined", data={})])
        before = tables(path)
        assert not store.has_key_store()
        assert tables(path) == before and "key_store_checks" not in before


def test_a_protected_sqlite_store_is_still_known_on_a_new_handle(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with open_store(url) as store:
        store.protect(LocalKeyEncryptionKey(bytes(32), "k"), PERSONAL)
    with open_store(url) as again:
        assert again.has_key_store() and not again.has_key_store("other")
