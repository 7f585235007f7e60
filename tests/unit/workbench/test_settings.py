"""Per-notebook stores, sizes and the manual clock."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from es_core import MemoryStore, NewEvent, SQLiteStore
from workbench import ManualClock, notebook_store, notebook_store_url, settings
from workbench.settings import PROJECT_ROOT, cassandra_keyspace


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_SMALL", "1")
    monkeypatch.delenv("ES_STORE_URL", raising=False)
    cfg = settings()
    assert cfg.small and cfg.size(10, 1000) == 10 and cfg.backend == "sqlite"
    monkeypatch.setenv("ES_SMALL", "0")
    monkeypatch.setenv("ES_STORE_URL", "cassandra://127.0.0.1:9042/es?replication_factor=1")
    cfg = settings()
    assert not cfg.small and cfg.size(10, 1000) == 1000 and cfg.backend == "cassandra"
    assert "cassandra://" in cfg.describe()


def test_default_url_is_an_absolute_sqlite_file_per_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ES_STORE_URL", raising=False)
    url = notebook_store_url("01_tour")
    assert url == f"sqlite:///{importlib.import_module('workbench.settings').NOTEBOOK_DATA / '01_tour.db'}"
    assert url.startswith("sqlite:////"), "absolute: notebooks run with notebooks/ as their working directory"


def test_env_urls_are_made_per_notebook() -> None:
    relative = notebook_store_url("03_sim", "sqlite:///data/local/events.db?synchronous=normal")
    assert relative == f"sqlite:///{PROJECT_ROOT / 'data/local/events-03_sim.db'}?synchronous=normal"
    cassandra = notebook_store_url("08_dist", "cassandra://127.0.0.1:9042/es_workbench?replication_factor=1")
    assert cassandra == "cassandra://127.0.0.1:9042/es_workbench_08_dist?replication_factor=1"
    assert notebook_store_url("x", "memory://") == "memory://"
    assert len(cassandra_keyspace("k" * 40, "a-long-notebook-name")) == 48


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError):
        notebook_store_url("../escape")


def test_a_fresh_store_starts_empty_every_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    first = notebook_store("nb", url=url)
    assert isinstance(first, SQLiteStore)
    first.append("s", [NewEvent(event_type="E", data={})])
    first.close()
    kept = notebook_store("nb", url=url, fresh=False)
    assert kept.head_position() == 1
    kept.close()
    again = notebook_store("nb", url=url)
    assert again.head_position() == 0
    again.close()
    assert isinstance(notebook_store("nb", url="memory://"), MemoryStore)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    assert clock() == clock() == datetime(2024, 1, 1, tzinfo=UTC)
    assert clock.advance(days=1, hours=2) == datetime(2024, 1, 2, 2, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.set(datetime(2024, 1, 1))
    store = MemoryStore(clock=clock)
    assert store.append("s", [NewEvent(event_type="E", data={})]).recorded_at == clock()
