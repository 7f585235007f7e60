"""Scale-out on a protected store (device names sealed, some members forgotten): each worker
protects its own handle with the key-encryption key from its own environment, so what-if
replays and projection rebuilds equal the serial ones; the key never travels in a task, and a
worker without it fails naming the variable to set."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from downloads import ReadModels, load_rules, personal_data, scaleout, simulate, whatif
from downloads.errors import ScaleOutError
from downloads.scaleout.tasks import store_at
from downloads.scaleout.worker_keys import WorkerKeys, worker_keys
from es_core import FORGOTTEN, EventStore, LocalKeyEncryptionKey, open_store
from es_core.keys import MemoryKeyTable
from es_core.splits import StoreSplit

from ..unit.domain.test_projection_merge import views
from .conftest import KEK, MEMBERS, STRICT_RULES, record, report_fields

SECRET = KEK.to_text().partition(":")[2]


@pytest.fixture
def protected(protected_history_url: str) -> Iterator[EventStore]:
    with open_store(protected_history_url) as store:
        store.protect(KEK, personal_data())
        yield store


def set_variable(name: str, value: str | None) -> None:
    """Run on each worker: set (or, with None, unset) an environment variable."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def worker_environment(client: Any, name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` on every worker of ``client``'s cluster for the block: as an
    operator sets ES_KEK on the workers of a cluster that is running already."""
    before = client.run(os.environ.get, name)
    client.run(set_variable, name, value)
    try:
        yield
    finally:
        for address, old in before.items():
            client.run(set_variable, name, old, workers=[address])


@pytest.fixture
def keyed_workers(client: Any) -> Iterator[Any]:
    with worker_environment(client, "ES_KEK", KEK.to_text()):
        yield client


def names_in_split(split: StoreSplit, keys: WorkerKeys) -> dict[str, list[str]]:
    """Run on a worker: the device names its own protected handle reads, per member stream."""
    found: dict[str, list[str]] = {}
    for r in store_at(split.url, keys).read_split(split):
        if r.event_type == "DeviceRegistered":
            found.setdefault(r.stream_id, []).append(r.data["device_name"])
    return found


def test_workers_read_names_and_placeholders_as_the_caller_does(protected: EventStore, keyed_workers: Any) -> None:
    keys = worker_keys(protected)
    assert keys is not None
    serial: dict[str, list[str]] = {}
    for r in protected.read_all():
        if r.event_type == "DeviceRegistered":
            serial.setdefault(r.stream_id, []).append(r.data["device_name"])
    on_workers: dict[str, list[str]] = {}
    for split in protected.split(4):
        on_workers |= keyed_workers.submit(names_in_split, split, keys, pure=False).result()
    assert on_workers == serial
    assert protected.key_store is not None
    forgotten = {f"member-{m}" for m in protected.key_store.forgotten()}
    assert forgotten & set(serial) and set(serial) - forgotten
    for stream_id, names in on_workers.items():
        assert all((n == FORGOTTEN) == (stream_id in forgotten) for n in names), stream_id


def test_a_what_if_on_the_cluster_equals_the_serial_one(protected: EventStore, keyed_workers: Any) -> None:
    rules = load_rules(STRICT_RULES)
    serial = whatif(protected, rules, max_changes=10)
    assert serial.newly_denied > 0
    for splits in (None, 3):
        on_cluster = scaleout.whatif(protected, rules, client=keyed_workers, max_changes=10, splits=splits)
        assert report_fields(on_cluster) == report_fields(serial)


def test_a_rebuild_on_the_cluster_equals_the_serial_one(protected: EventStore, keyed_workers: Any) -> None:
    serial = ReadModels(protected)
    handled = serial.rebuild()
    on_cluster = scaleout.rebuild(protected, client=keyed_workers, splits=3)
    titles = sorted({r["title_id"] for r in serial.downloads_per_title_day.rows()})
    assert views(on_cluster, titles) == views(serial, titles)
    assert on_cluster.device_names.rows() == serial.device_names.rows()
    assert on_cluster.device_names.forgotten == serial.device_names.forgotten != set()
    assert on_cluster.subscription.delivered == handled > 0
    names = [row["device_name"] for row in on_cluster.device_names.rows()]
    assert names and FORGOTTEN not in names  # live members' names, opened on the workers


def test_the_key_never_travels_in_a_task(protected: EventStore) -> None:
    keys = worker_keys(protected)
    assert keys == WorkerKeys("default", "kek-scaleout", keys.personal, "ES_KEK")  # type: ignore[union-attr]
    assert worker_keys(protected, "OTHER_KEK").variable == "OTHER_KEK"  # type: ignore[union-attr]
    shipped = pickle.dumps(keys)
    assert SECRET.encode() not in shipped and KEK.to_text().encode() not in shipped
    assert bytes(range(50, 82)) not in shipped


def test_a_worker_without_the_key_fails_naming_the_variable(tmp_path: Any, client: Any) -> None:
    with open_store(f"sqlite:///{tmp_path}/fresh.db") as store:  # a file no worker has a handle on yet
        record(store, members=6)
        with worker_environment(client, "ES_KEK", None):
            with pytest.raises(ScaleOutError, match=r"a worker cannot open the protected store: .*ES_KEK") as e:
                scaleout.rebuild(store, client=client, splits=2, retries=0)
            assert SECRET not in str(e.value)
            with pytest.raises(ScaleOutError, match="set the environment variable MY_KEK"):
                scaleout.whatif(store, load_rules(), client=client, splits=2, retries=0, kek_variable="MY_KEK")
        other = LocalKeyEncryptionKey.generate("kek-other").to_text()
        with worker_environment(client, "ES_KEK", other), pytest.raises(ScaleOutError) as e:
            scaleout.whatif(store, load_rules(), client=client, splits=2, retries=0)
        assert "holds key-encryption key 'kek-other', but the store's is 'kek-scaleout'" in str(e.value)
        assert other.partition(":")[2] not in str(e.value)
        same_id = LocalKeyEncryptionKey(bytes(32), "kek-scaleout").to_text()
        with worker_environment(client, "ES_KEK", same_id), pytest.raises(ScaleOutError) as e:
            scaleout.rebuild(store, client=client, splits=2, retries=0)
        assert "cannot open the protected store with the key in ES_KEK: key store 'default' does not open" in (
            str(e.value)
        )


def test_a_key_table_of_the_callers_own_cannot_be_scaled_out(tmp_path: Any, client: Any) -> None:
    with open_store(f"sqlite:///{tmp_path}/own-table.db") as store:
        store.protect(KEK, personal_data(), table=MemoryKeyTable())
        simulate(store, members=3, days=5, seed=1)
        with pytest.raises(ScaleOutError, match="key table of its own"):
            scaleout.rebuild(store, client=client)


def test_an_unprotected_store_sends_no_keys(history: EventStore) -> None:
    assert worker_keys(history) is None


@pytest.mark.cassandra
def test_a_what_if_and_a_rebuild_on_the_cluster_equal_the_serial_ones_on_cassandra(keyed_workers: Any) -> None:
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip("es_scaleout_protected")
    with open_store(url) as store:
        if store.head_position() == 0:
            record(store, members=MEMBERS // 2)
        else:
            store.protect(KEK, personal_data())
        assert store.key_store is not None and store.key_store.forgotten()
        rules = load_rules(STRICT_RULES)
        serial = whatif(store, rules, max_changes=7)
        assert report_fields(scaleout.whatif(store, rules, client=keyed_workers, max_changes=7, splits=5)) == (
            report_fields(serial)
        )
        models = ReadModels(store)
        models.rebuild()
        on_cluster = scaleout.rebuild(store, client=keyed_workers, splits=5)
        assert on_cluster.device_names.rows() == models.device_names.rows() != []
        assert on_cluster.device_names.forgotten == models.device_names.forgotten
