"""The distributed notebook's helpers against the real Cassandra node (skipped without one,
failed without one when ES_REQUIRE_CASSANDRA=1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cassandra_node import cassandra_url_or_skip

pytestmark = pytest.mark.cassandra


@pytest.fixture
def cassandra_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = cassandra_url_or_skip("es_workbench")
    monkeypatch.setenv("ES_STORE_URL", url)
    yield url
    from workbench.cassandra import drop_keyspace
    from workbench.settings import notebook_store_url

    for name in ("test_fresh_ks", "test_race"):
        drop_keyspace(notebook_store_url(name, url))


def test_a_notebook_gets_a_fresh_keyspace_of_its_own(cassandra_env: str) -> None:
    from es_core import NewEvent
    from workbench import notebook_store

    first = notebook_store("test_fresh_ks")
    try:
        assert first.scheme == "cassandra" and "/es_workbench_test_fresh_ks" in first.url
        first.append("s", [NewEvent(event_type="E", data={})])
    finally:
        first.close()
    again = notebook_store("test_fresh_ks")
    try:
        assert again.stream_version("s") == 0, "dropped and recreated"
    finally:
        again.close()


def test_layout_partitions_and_a_race_on_cassandra(cassandra_env: str) -> None:
    from workbench import distributed_store, partition_report, race_writers, second_handle, table_layout

    store, backend = distributed_store("test_race", cassandra_options={"bucket_width": "10"})
    other = second_handle(store)
    try:
        assert backend.is_cassandra and not backend.fallback_reason
        result = race_writers({"A": store, "B": other}, "race", rounds=12)
        assert not result.errors and sum(result.wins.values()) == 12 == result.final_version
        assert result.total_conflicts == 12 and result.versions_contiguous
        layout = table_layout(store)
        assert {"events", "snapshots"} <= set(layout) and "PRIMARY KEY ((stream_id, bucket), version)" in layout[
            "events"
        ]
        report = partition_report(store, "race")
        assert report.max_rows_per_partition == 10 and report.events == 12
        assert list(report.partitions["rows"]) == [10, 2]
    finally:
        other.close()
        store.close()
