"""Projection rebuilds on a Dask cluster equal the serial rebuild, on SQLite and on the real
Cassandra node, and stand at the plan's cut of the log so catching up goes on from there."""

from __future__ import annotations

from typing import Any

import pytest

from downloads import ReadModels, scaleout
from downloads.scaleout.copy import StreamsCopy, copy_into
from es_core import EventStore, open_store

from ..unit.domain.test_projection_merge import views


def titles_of(models: ReadModels) -> list[str]:
    return sorted({r["title_id"] for r in models.downloads_per_title_day.rows()})


def check_rebuild(store: EventStore, client: Any, splits: int | None) -> None:
    serial = ReadModels(store)
    handled = serial.rebuild()
    on_cluster = scaleout.rebuild(store, client=client, splits=splits)
    assert views(on_cluster, titles_of(serial)) == views(serial, titles_of(serial))
    assert on_cluster.position == serial.position
    assert on_cluster.subscription.delivered == handled > 0


@pytest.mark.parametrize("splits", [None, 3])
def test_a_rebuild_on_the_cluster_equals_the_serial_one(history: EventStore, client: Any, splits: int | None) -> None:
    check_rebuild(history, client, splits)


def test_catching_up_goes_on_from_the_cut(history_url: str, client: Any, tmp_path: Any) -> None:
    copy_url = f"sqlite:///{tmp_path}/copy.db"
    with open_store(history_url) as source, open_store(copy_url) as store:
        events = list(source.read_all())
        copy_into(store, StreamsCopy(events=events[: len(events) // 2], snapshots=[]))
        models = scaleout.rebuild(store, client=client)
        copy_into(store, StreamsCopy(events=events[len(events) // 2 :], snapshots=[]))
        assert models.catch_up() == len(events) - len(events) // 2
        serial = ReadModels(store)
        serial.rebuild()
        assert views(models, titles_of(serial)) == views(serial, titles_of(serial))


@pytest.mark.cassandra
def test_a_rebuild_on_the_cluster_equals_the_serial_one_on_cassandra(client: Any, cassandra_history_url: str) -> None:
    with open_store(cassandra_history_url) as store:
        check_rebuild(store, client, 4)

