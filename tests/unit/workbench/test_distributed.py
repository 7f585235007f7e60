"""The distributed notebook's helpers on the embedded backend: the fallback and its reason,
the table layout, partitions, and racing writers."""

from __future__ import annotations

import socket

import pytest

from es_core import SQLiteStore
from workbench import (
    CassandraRequiredError,
    distributed_store,
    node_answers,
    partition_report,
    race_writers,
    second_handle,
    table_layout,
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_CASSANDRA_HOST", "127.0.0.1")
    monkeypatch.setenv("ES_CASSANDRA_PORT", str(_closed_port()))
    monkeypatch.delenv("ES_STORE_URL", raising=False)
    monkeypatch.delenv("ES_REQUIRE_CASSANDRA", raising=False)


@pytest.mark.usefixtures("no_node")
def test_without_a_node_the_store_falls_back_to_sqlite_and_says_why() -> None:
    assert not node_answers()
    store, backend = distributed_store("test_fallback")
    try:
        assert isinstance(store, SQLiteStore) and not backend.is_cassandra
        assert backend.fallback_reason and "scripts/cassandra-node start" in backend.fallback_reason
        assert "fallback" in backend.describe() and "sqlite" in backend._repr_html_()
    finally:
        store.close()


@pytest.mark.usefixtures("no_node")
def test_requiring_cassandra_turns_the_fallback_into_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_REQUIRE_CASSANDRA", "1")
    with pytest.raises(CassandraRequiredError, match="ES_REQUIRE_CASSANDRA"):
        distributed_store("test_required")


@pytest.mark.usefixtures("no_node")
def test_layout_partitions_and_a_race_on_sqlite() -> None:
    store, _ = distributed_store("test_race")
    other = second_handle(store)
    try:
        result = race_writers({"A": store, "B": other}, "race", rounds=8)
        assert not result.errors
        assert sum(result.wins.values()) == result.rounds == result.final_version == 8
        assert result.total_conflicts == 8 and result.versions_contiguous
        layout = table_layout(store)
        assert {"events", "snapshots"} <= set(layout) and "stream_id" in layout["events"]
        report = partition_report(store, "race")
        assert report.events == 8 and report.partitions["rows"].sum() == 8 and report.max_rows_per_partition is None
    finally:
        other.close()
        store.close()


def test_the_layout_of_a_store_at_a_relative_path_is_read_from_that_file(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    store = SQLiteStore("relative/events.db")
    try:
        assert store.url == "sqlite:///relative/events.db"
        assert {"events", "snapshots"} <= set(table_layout(store))
    finally:
        store.close()
