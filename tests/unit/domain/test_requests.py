"""Request ids are idempotency keys: a retry gets its first answer; the same id for another
request is refused, naming what differs, and writes nothing; a request older than the member's
memory is refused as forgotten, whatever the command."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from downloads import (
    REQUEST_MEMORY,
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    DownloadService,
    MemberAccount,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    RequestForgottenError,
    RequestReusedError,
    Subscribe,
    new_registry,
)
from es_core import NO_SNAPSHOTS, Repository, Snapshot, SnapshotPolicy

from .conftest import T0, World

MINUTE = timedelta(minutes=1)


def _head(world: World) -> int:
    return world.store.head_position()


@pytest.mark.parametrize(
    ("again", "differs"),
    [
        ({"device_id": "phone", "title_id": "film-b"}, "title_id was 'film-a', now 'film-b'"),
        ({"device_id": "tablet", "title_id": "film-a"}, "device_id was 'phone', now 'tablet'"),
    ],
)
def test_a_request_id_reused_for_another_download_is_refused(world: World, again: dict, differs: str) -> None:  # type: ignore[type-arg]
    world.join(devices=("phone", "tablet"))
    first = world.acquire("film-a")
    head = _head(world)
    with pytest.raises(RequestReusedError, match=differs) as refused:
        world.send(AcquireLicense, request_id=first.request_id, **again)
    assert refused.value.request_id == first.request_id and f"'{first.request_id}'" in str(refused.value)
    assert _head(world) == head  # nothing written, and the first answer stands:
    assert world.send(AcquireLicense, request_id=first.request_id, device_id="phone", title_id="film-a").duplicate


def test_a_request_id_reused_for_another_command_type_is_refused(world: World) -> None:
    world.join()
    first = world.acquire("film-a")
    with pytest.raises(RequestReusedError, match="command was 'AcquireLicense', now 'RenewLicense'") as refused:
        world.send(RenewLicense, request_id=first.request_id, license_id=first.license_id)
    assert set(refused.value.differences) == {"command"}


def test_a_request_id_reused_for_a_denied_request_is_refused(world: World) -> None:
    world.join()
    denied = world.acquire("coming")
    assert not denied.granted
    with pytest.raises(RequestReusedError, match="title_id was 'coming', now 'show-x'"):
        world.send(AcquireLicense, request_id=denied.request_id, device_id="phone", title_id="show-x")


def test_a_request_id_reused_for_another_member_is_refused_by_the_service_that_answered_it(world: World) -> None:
    world.join("ann")
    world.join("bob")
    first = world.acquire("film-a", member="ann")
    head = _head(world)
    with pytest.raises(RequestReusedError, match="member_id was 'ann', now 'bob'"):
        world.send(AcquireLicense, "bob", request_id=first.request_id, device_id="phone", title_id="film-a")
    assert _head(world) == head


def test_a_request_id_reused_after_the_member_forgot_it_is_still_refused_as_reused(world: World) -> None:
    world.join(plan="premium")
    first = world.acquire("show-x")
    for n in range(REQUEST_MEMORY + 1):
        world.acquire("show-y", T0 + n * MINUTE)
    with pytest.raises(RequestReusedError, match="title_id was 'show-x', now 'film-a'"):  # the store's record says
        world.send(AcquireLicense, request_id=first.request_id, device_id="phone", title_id="film-a")


# -- forgotten requests: one error, whatever the command ----------------------------------


def _forgetting_world() -> tuple[World, dict[str, object]]:
    """A member whose first requests of every kind are older than their memory."""
    world = World()
    world.join(plan="premium", devices=("phone",))
    lic = world.acquire("show-x").license_id
    sent = {
        "register": (RegisterDevice, {"device_id": "tablet"}),
        "renew": (RenewLicense, {"license_id": lic}),
        "play": (PlayDownload, {"license_id": lic}),
        "plan": (ChangePlan, {"plan": "standard"}),
        "remove": (RemoveDevice, {"device_id": "tablet"}),
    }
    commands: dict[str, object] = {}
    for name, (make, fields) in sent.items():
        world.send(make, request_id=name, **fields)
        commands[name] = (make, fields)
    release = world.acquire("show-y")
    world.send(ReleaseLicense, request_id="release", license_id=release.license_id)
    commands["release"] = (ReleaseLicense, {"license_id": release.license_id})
    world.send(CancelMembership, request_id="cancel")
    commands["cancel"] = (CancelMembership, {})
    world.send(Subscribe, request_id="rejoin", plan="basic")
    for n in range(REQUEST_MEMORY + 1):
        world.send(ChangePlan, request_id=f"churn-{n}", plan=("standard", "basic")[n % 2])
    return world, commands


def test_a_retry_of_any_command_older_than_the_members_memory_is_refused_as_forgotten() -> None:
    world, commands = _forgetting_world()
    head = _head(world)
    for name, (make, fields) in commands.items():  # type: ignore[misc]
        with pytest.raises(RequestForgottenError, match=f"request {name} of member ann"):
            world.send(make, request_id=name, **fields)
    assert _head(world) == head


# -- the answer is the snapshot format: a state-schema bump -------------------------------


def test_a_snapshot_from_before_the_answer_record_is_ignored_not_misread(world: World) -> None:
    world.join()
    world.acquire("film-a")
    old = Snapshot(  # what state_schema_version 1 stored: requests as flat eight-field arrays
        stream_id="member-ann", version=3, state_type="member", state_schema_version=1, taken_at=T0,
        state=b'{"plan":"standard","requests":{"r3":[true,"lic-1",null,null,null,2,null,"granted"]}}',
    )
    world.store.save_snapshot(old)
    repository = Repository(world.store, new_registry(), MemberAccount, SnapshotPolicy(every=50))
    loaded = repository.load("ann")
    assert repository.stats.snapshots_ignored == 1 and loaded.loaded_from == "events"
    replayed = Repository(world.store, new_registry(), MemberAccount, NO_SNAPSHOTS).load("ann")
    assert msgspec.json.encode(loaded.state) == msgspec.json.encode(replayed.state)
    assert loaded.remembered("r3").answer.granted  # type: ignore[union-attr]


def test_a_load_says_where_the_member_came_from() -> None:
    world = World(cache_size=4)
    world.service = DownloadService(
        world.store, world.rules, world.catalogue, cache_size=4, snapshot_policy=SnapshotPolicy(every=2, keep=1)
    )
    world.join()
    assert world.service.repository.load("ann").loaded_from == "cache"
    assert world.service.member("ann", at_version=2).loaded_from == "snapshot"
    assert world.service.member("ann", at_version=1).loaded_from == "events"
