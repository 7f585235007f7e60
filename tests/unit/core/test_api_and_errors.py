"""The public API surface, the error tree, and store URLs."""

from __future__ import annotations

import inspect
import sqlite3

import pytest

import es_core
from es_core import (
    EventSourcingError,
    InvalidInputError,
    InvalidStoreUrlError,
    MemoryStore,
    SQLiteStore,
    StoreCorruptionError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    open_store,
)
from es_core import errors as errors_module
from es_core.stores import sqlite_path
from es_core.stores.sqlite import translate_sqlite_error


def test_all_is_sorted_complete_and_importable() -> None:
    assert es_core.__all__ == sorted(es_core.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    for name in es_core.__all__:
        assert hasattr(es_core, name), name


def test_every_error_is_in_the_tree_and_drawn_in_the_docstring() -> None:
    classes = [c for _, c in inspect.getmembers(errors_module, inspect.isclass) if issubclass(c, Exception)]
    assert classes
    for cls in classes:
        assert issubclass(cls, EventSourcingError), cls
        assert cls.__name__ in (errors_module.__doc__ or ""), f"{cls.__name__} missing from the error tree drawing"
        assert cls.__name__ in es_core.__all__, cls
    assert issubclass(StoreTimeoutError, StoreUnavailableError)
    assert issubclass(InvalidInputError, ValueError)  # callers catching ValueError still work


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), StoreUnavailableError),
        (sqlite3.OperationalError("database table is locked"), StoreUnavailableError),
        (sqlite3.DatabaseError("database disk image is malformed"), StoreCorruptionError),
        (sqlite3.DatabaseError("file is not a database"), StoreCorruptionError),
        (sqlite3.OperationalError("disk I/O error"), StoreError),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), StoreError),
    ],
)
def test_sqlite_errors_are_translated(exc: sqlite3.Error, expected: type[StoreError]) -> None:
    translated = translate_sqlite_error(exc)
    assert type(translated) is expected


def test_a_damaged_file_is_reported_as_corruption(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorruptionError):
        open_store(f"sqlite:///{path}")


def test_a_closed_store_raises_a_store_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.stream_version("s")


def test_urls_choose_backends(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path}/a.db?synchronous=normal&busy_timeout_ms=100")
    assert isinstance(store, SQLiteStore) and store.synchronous == "normal"
    assert open_store(store.url).path == store.path
    monkeypatch.setenv("ES_STORE_URL", f"sqlite:///{tmp_path}/env.db")
    assert open_store().path == tmp_path / "env.db"  # type: ignore[attr-defined]
    monkeypatch.chdir(tmp_path)
    rel = open_store("sqlite:///rel/dir/b.db")
    assert rel.path.resolve() == (tmp_path / "rel/dir/b.db").resolve()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "events.db",
        "postgres://localhost/db",
        "memory://host",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///dir/",
        "sqlite:///x.db?synchronous=off",
        "sqlite:///x.db?unknown=1",
        "sqlite:///x.db?busy_timeout_ms=abc",
        "sqlite:///x.db?page_size=big",
        None.__class__.__name__,
    ],
)
def test_bad_urls_are_refused_with_a_specific_error(url: str) -> None:
    with pytest.raises(InvalidStoreUrlError):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "path"),
    [("sqlite:///rel.db", "rel.db"), ("sqlite:////abs/dir/x.db?synchronous=normal", "/abs/dir/x.db"), ("sqlite:", "")],
)
def test_sqlite_urls_name_their_file(url: str, path: str) -> None:
    assert sqlite_path(url) == path


def test_a_naive_clock_is_refused() -> None:
    from datetime import datetime

    store = open_store("memory://", clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(InvalidInputError):
        store.append("s", [es_core.NewEvent(event_type="E", data={})])
    assert store.stream_version("s") == 0


@pytest.mark.parametrize(
    ("policy", "enabled"),
    [
        (es_core.SnapshotPolicy(), False),
        (es_core.SnapshotPolicy(every=5), True),
        (es_core.SnapshotPolicy(replayed_more_than=10), True),
    ],
)
def test_a_snapshot_policy_knows_whether_it_can_snapshot(policy: es_core.SnapshotPolicy, enabled: bool) -> None:
    assert policy.enabled is enabled
    assert repr(policy).count("enabled") == 0 and policy == es_core.SnapshotPolicy(policy.every,
                                                                               policy.replayed_more_than)


def test_a_new_file_takes_the_page_size_its_url_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path}/big.db?page_size=8192")
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 8192  # type: ignore[attr-defined]
    store.close()


@pytest.mark.parametrize("page_size", [0, 1000, 256, 131072, "4096", True])
def test_a_bad_page_size_is_refused_and_creates_no_file(tmp_path, page_size: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="page_size"):
        SQLiteStore(tmp_path / "x.db", page_size=page_size)  # type: ignore[arg-type]
    assert not (tmp_path / "x.db").exists()
