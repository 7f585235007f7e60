"""Simulation on a Dask cluster: every member's stream is the single-process run's with the same
seed (same events, same order, same recorded times), into SQLite and memory through one writer
and into the real Cassandra node by the workers themselves; the report adds up to the same."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from downloads import scaleout, simulate
from downloads.scaleout.copy import contents_of, copy_into
from es_core import EventStore, InvalidInputError, Snapshot, open_store

MEMBERS, DAYS, SEED = 40, 40, 9
TIMING = ("wall_seconds", "events_per_second", "commands_per_second", "peak_rss_mb")


def streams(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every stream as (version, event id, type, schema version, data, metadata, recorded at)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for split in store.split(1):
        for e in store.read_split(split):
            row = (e.version, e.event_id, e.event_type, e.schema_version, e.data, e.metadata, e.recorded_at)
            out.setdefault(e.stream_id, []).append(row)
    return out


def counts(report: Any) -> dict[str, Any]:
    fields = report.as_dict()
    for name in TIMING:
        fields.pop(name)
    return fields


@pytest.fixture(scope="module")
def serial() -> tuple[Any, dict[str, list[tuple[Any, ...]]]]:
    with open_store("memory://") as store:
        report = simulate(store, members=MEMBERS, days=DAYS, seed=SEED)
        return report, streams(store)


@pytest.mark.parametrize("target", ["sqlite", "memory"])
def test_members_are_simulated_as_in_one_process(
    serial: tuple[Any, dict[str, Any]], client: Any, tmp_path: Path, target: str
) -> None:
    report, expected = serial
    url = f"sqlite:///{tmp_path}/sim.db" if target == "sqlite" else "memory://"
    with open_store(url) as store:
        on_cluster = scaleout.simulate(store, client=client, members=MEMBERS, days=DAYS, seed=SEED, splits=5)
        assert streams(store) == expected
    assert len(expected) >= MEMBERS and report.events > 100
    assert counts(on_cluster) == counts(report)


def test_a_store_holding_events_is_refused(client: Any) -> None:
    with open_store("memory://") as store:
        simulate(store, members=2, days=2, seed=1)
        with pytest.raises(InvalidInputError, match="already holds events"):
            scaleout.simulate(store, client=client, members=2, days=2)


def test_a_copy_run_again_writes_nothing_twice() -> None:
    with open_store("memory://") as source, open_store("memory://") as target:
        simulate(source, members=6, days=20, seed=4)
        stream_id = next(source.read_all()).stream_id
        source.save_snapshot(Snapshot(stream_id=stream_id, version=1, state_type="probe", state_schema_version=1,
                                      state=b"{}", taken_at=datetime(2026, 1, 2, tzinfo=UTC)))
        contents = contents_of(source)
        assert copy_into(target, contents) == len(contents.events) > 0
        assert copy_into(target, contents) == 0  # every append recognised as a retry
        assert streams(target) == streams(source)
        assert target.head_position() == source.head_position()
        assert [s.state_type for s in contents.snapshots] == ["probe"]
        assert target.latest_snapshot(stream_id) == contents.snapshots[0]


@pytest.mark.cassandra
def test_members_are_simulated_as_in_one_process_into_cassandra(
    serial: tuple[Any, dict[str, Any]], client: Any
) -> None:
    from es_core.stores.cassandra import CassandraStore
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip("es_scaleout_simulation")
    CassandraStore.drop(url)  # a simulation needs an empty keyspace: start from none
    report, expected = serial
    try:
        with open_store(url) as store:
            on_cluster = scaleout.simulate(store, client=client, members=MEMBERS, days=DAYS, seed=SEED, splits=3)
            assert streams(store) == expected
        assert counts(on_cluster) == counts(report)
    finally:
        CassandraStore.drop(url)
