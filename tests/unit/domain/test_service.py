"""The Aggregate Service: idempotent retries, races, store failures, snapshots, time travel."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from downloads import (
    AcquireLicense,
    DownloadService,
    MemberAccount,
    RegisterDevice,
    ReleaseLicense,
    RequestForgottenError,
    Subscribe,
    new_registry,
)
from downloads.member import REQUEST_MEMORY
from es_core import (
    NO_SNAPSHOTS,
    ConcurrencyError,
    MemoryStore,
    Repository,
    SnapshotPolicy,
    StoreUnavailableError,
    open_store,
)

from .conftest import T0, World, make_catalogue, make_rules

DAY = timedelta(days=1)


def test_a_retried_grant_returns_the_first_outcome_and_writes_nothing(world: World) -> None:
    world.join()
    first = world.acquire("film-a")
    head = world.store.head_position()
    again = world.send(AcquireLicense, at=T0 + DAY, request_id=first.request_id, device_id="phone", title_id="film-a")
    assert again.duplicate and again.events == 0
    assert (again.granted, again.license_id, again.remaining) == (True, first.license_id, first.remaining)
    assert world.store.head_position() == head


def test_a_retried_denial_returns_the_first_denial(world: World) -> None:
    world.join()
    denied = world.acquire("coming")
    head = world.store.head_position()
    again = world.send(AcquireLicense, request_id=denied.request_id, device_id="phone", title_id="coming")
    assert again.duplicate and not again.granted
    assert (again.rule, again.retry_at, again.reason) == (denied.rule, denied.retry_at, denied.reason)
    assert world.store.head_position() == head
    assert world.service.member("ann").state.denials == 1  # recorded once


def test_a_retry_reaching_another_server_with_a_stale_cache_is_absorbed_by_the_store() -> None:
    world = World(cache_size=10)
    world.join(plan="basic", devices=("phone", "tablet"))
    other = DownloadService(world.store, world.rules, world.catalogue, cache_size=10)
    other.member("ann")  # warm
    assert other.handle(RegisterDevice(member_id="ann", at=T0, request_id="warm", device_id="laptop")).granted
    first = world.acquire("show-x")  # the stale server has not seen this
    head = world.store.head_position()
    retry = other.handle(
        AcquireLicense(member_id="ann", at=first.at, request_id=first.request_id, device_id="phone", title_id="show-x")
    )
    assert retry.duplicate and retry.granted and retry.license_id == first.license_id
    assert world.store.head_position() == head


def test_racing_downloads_cannot_break_the_device_limit() -> None:
    world = World(cache_size=10)
    world.join(plan="basic", devices=("phone", "tablet"))
    other = DownloadService(world.store, world.rules, world.catalogue, cache_size=10)
    other.member("ann")
    other.handle(RegisterDevice(member_id="ann", at=T0, request_id="warm", device_id="laptop"))  # both caches warm
    world.service.member("ann")
    assert world.acquire("show-x", device="phone").granted
    late = other.handle(
        AcquireLicense(member_id="ann", at=T0, request_id="race", device_id="tablet", title_id="show-y")
    )
    assert not late.granted and late.rule == "devices_per_plan"  # decided again on fresh state
    assert world.service.member("ann").devices_holding_downloads() == ["phone"]


class _AlwaysBehind(MemoryStore):
    def _append(self, stream_id, events, expected, recorded_at):  # type: ignore[no-untyped-def]
        raise ConcurrencyError(stream_id, expected, 99)


class _Down(MemoryStore):
    def _append(self, stream_id, events, expected, recorded_at):  # type: ignore[no-untyped-def]
        raise StoreUnavailableError("the store is down")


def test_concurrency_retries_are_bounded() -> None:
    service = DownloadService(_AlwaysBehind(), make_rules(), make_catalogue(), max_attempts=3, clock=lambda: T0)
    with pytest.raises(ConcurrencyError):
        service.handle(Subscribe(member_id="ann", at=T0, request_id="r", plan="basic"))
    assert service.repository.stats.loads == 3


def test_store_failures_propagate_as_they_are() -> None:
    service = DownloadService(_Down(), make_rules(), make_catalogue(), clock=lambda: T0)
    with pytest.raises(StoreUnavailableError):
        service.handle(Subscribe(member_id="ann", at=T0, request_id="r", plan="basic"))


def test_a_retry_older_than_the_members_memory_is_refused_not_repeated(world: World) -> None:
    world.join(plan="premium")
    first = world.acquire("show-x")
    for n in range(REQUEST_MEMORY + 1):
        world.acquire("show-y", T0 + n * timedelta(minutes=1))
    head = world.store.head_position()
    with pytest.raises(RequestForgottenError):
        world.send(AcquireLicense, request_id=first.request_id, device_id="phone", title_id="show-x")
    assert world.store.head_position() == head


def _history(world: World) -> None:
    world.join(plan="premium", devices=("phone", "tablet"))
    for n in range(12):
        outcome = world.acquire(("film-a", "show-x", "film-b")[n % 3], T0 + n * DAY, device=("phone", "tablet")[n % 2])
        if n % 4 == 0 and outcome.license_id:
            world.send(ReleaseLicense, at=T0 + n * DAY + timedelta(hours=1), license_id=outcome.license_id)


def test_snapshots_are_invisible() -> None:
    plain = World()
    snapshotted = World()
    snapshotted.service = DownloadService(
        snapshotted.store, snapshotted.rules, snapshotted.catalogue, snapshot_policy=SnapshotPolicy(every=3, keep=2)
    )
    _history(plain)
    _history(snapshotted)
    assert snapshotted.service.repository.stats.snapshots_saved > 0
    with_snapshot = snapshotted.service.member("ann")
    full_replay = Repository(snapshotted.store, new_registry(), MemberAccount, NO_SNAPSHOTS).load("ann")
    assert with_snapshot.replayed_on_load < with_snapshot.version
    encode = msgspec.json.encode
    assert encode(with_snapshot.state) == encode(full_replay.state) == encode(plain.service.member("ann").state)


def test_state_as_it_was_known_at_a_simulated_time(world: World) -> None:
    world.join()
    lic = world.acquire("show-x", T0 + DAY).license_id
    world.send(ReleaseLicense, at=T0 + 3 * DAY, license_id=lic)
    assert lic in world.service.member("ann", known_by=T0 + 2 * DAY).state.licenses
    assert world.service.member("ann", known_by=T0 + 4 * DAY).state.licenses == {}
    assert world.service.member("ann", known_by=T0 + DAY - timedelta(seconds=1)).state.licenses == {}


def test_the_service_works_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = World(store=open_store(f"sqlite:///{tmp_path}/events.db"), cache_size=5)
    _history(world)
    reopened = DownloadService(open_store(f"sqlite:///{tmp_path}/events.db"), world.rules, world.catalogue)
    assert msgspec.json.encode(reopened.member("ann").state) == msgspec.json.encode(world.service.member("ann").state)
