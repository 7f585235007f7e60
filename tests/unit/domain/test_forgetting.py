"""Forgetting a member in the domain: the aggregate, snapshots, read models, what-if and the
simulator on a protected store (device names sealed per member)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from downloads import (
    AcquireLicense,
    ChangePlan,
    DownloadService,
    MemberForgottenError,
    NotSubscribedError,
    ReadModels,
    RegisterDevice,
    load_rules,
    personal_data,
    recorded_requests,
    simulate,
    whatif,
)
from es_core import (
    FORGOTTEN,
    InvalidInputError,
    JsonlArchive,
    LocalKeyEncryptionKey,
    RetentionPolicy,
    SnapshotPolicy,
    apply_retention,
    open_store,
)

from .conftest import T0, World, make_rules

KEK = LocalKeyEncryptionKey(bytes(32), "test-kek")
NAME = "Ann's kitchen tablet"


def protected_world(tmp_path: Path | None = None) -> World:
    store = open_store(f"sqlite:///{tmp_path}/events.db" if tmp_path else "memory://")
    store.protect(KEK, personal_data())
    world = World(store=store)
    world.service = DownloadService(
        store, world.rules, world.catalogue, snapshot_policy=SnapshotPolicy(every=2, keep=1), cache_size=8
    )
    return world


def ann_and_bob(world: World) -> None:
    for member in ("ann", "bob"):
        world.join(member, devices=())
        world.send(RegisterDevice, member, device_id="tab", kind="tablet", device_name=f"{member}: {NAME}")
        world.acquire("show-x", member=member, device="tab")


def test_a_forgotten_member_rebuilds_with_placeholders_and_takes_no_more_commands(tmp_path: Path) -> None:
    world = protected_world(tmp_path)
    ann_and_bob(world)
    assert world.service.member("ann").state.devices["tab"].name == f"ann: {NAME}"
    assert world.store.latest_snapshot("member-ann") is not None
    versions = world.store.stream_version("member-ann")
    outcome = world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")
    assert outcome.granted and outcome.reason.startswith("member forgotten")
    assert outcome.events == 2  # the licence released, and MemberForgotten
    assert world.store.stream_version("member-ann") == versions + 2
    registered = next(r for r in world.store.read_stream("member-ann") if r.event_type == "DeviceRegistered")
    assert registered.data["device_name"] == FORGOTTEN and registered.data["device_id"] == "tab"
    assert world.store.latest_snapshot("member-ann", upto=versions) is None  # sealed with the destroyed key
    after = world.store.latest_snapshot("member-ann")  # taken unsealed by forget_member, holding no name
    assert after is not None and after.version == versions + 2 and NAME.encode() not in after.state
    ann = world.service.member("ann")
    assert ann.state.forgotten and ann.state.devices == {} and ann.state.licenses == {}
    assert world.service.member("ann", at_version=3).state.devices["tab"].name == FORGOTTEN
    with pytest.raises(MemberForgottenError):
        world.send(ChangePlan, "ann", plan="premium")
    with pytest.raises(MemberForgottenError):
        world.service.forget_member("ann", T0 + timedelta(days=2), "forget-2")
    again = world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")  # a retry: same answer
    assert again.duplicate and again.granted
    assert world.service.member("bob").state.devices["tab"].name == f"bob: {NAME}"
    assert world.acquire("show-y", member="bob", device="tab").granted


def test_no_plaintext_of_a_forgotten_member_is_left_in_the_file(tmp_path: Path) -> None:
    world = protected_world(tmp_path)
    ann_and_bob(world)
    world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")
    world.store.close()
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert f"ann: {NAME}".encode() not in files and f"bob: {NAME}".encode() not in files  # sealed, both
    reopened = open_store(f"sqlite:///{tmp_path}/events.db")
    reopened.protect(KEK, personal_data())
    names = [r.data["device_name"] for r in reopened.read_all() if r.event_type == "DeviceRegistered"]
    assert names == [FORGOTTEN, f"bob: {NAME}"]


def test_forgetting_a_member_who_never_joined_is_refused_and_writes_nothing() -> None:
    world = protected_world()
    with pytest.raises(NotSubscribedError):
        world.service.forget_member("nobody", T0, "forget-1")
    assert world.store.head_position() == 0
    assert world.store.key_store is not None and world.store.key_store.status("nobody") == "unknown"


def test_a_member_without_personal_data_still_gets_a_tombstone() -> None:
    world = protected_world()
    world.join("cy", devices=())
    world.service.forget_member("cy", T0, "forget-1")
    assert world.store.key_store is not None and world.store.key_store.status("cy") == "forgotten"


def test_read_models_drop_the_forgotten_members_rows() -> None:
    world = protected_world()
    ann_and_bob(world)
    models = ReadModels(world.store)
    models.catch_up()
    assert {r["member_id"] for r in models.device_names.rows()} == {"ann", "bob"}
    # the subscription reads stored pages and decodes lazily: the names arrive opened, as read_all shows them
    shown = {r.data["device_name"] for r in world.store.read_all() if r.event_type == "DeviceRegistered"}
    assert {r["device_name"] for r in models.device_names.rows()} == shown and FORGOTTEN not in shown
    world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")
    models.catch_up()
    assert [r["member_id"] for r in models.device_names.rows()] == ["bob"]
    assert [r["member_id"] for r in models.devices_per_member.rows()] == ["bob"]
    assert set(models.active_licenses.by_member()) == {"bob"}
    rebuilt = ReadModels(world.store)
    rebuilt.rebuild()
    assert rebuilt.device_names.rows() == models.device_names.rows()


def test_command_metadata_never_holds_personal_fields() -> None:
    world = protected_world()
    ann_and_bob(world)
    commands = [r.metadata["command"] for r in world.store.read_all() if r.event_type == "DeviceRegistered"]
    assert commands and all("device_name" not in c for c in commands)


def test_whatif_replays_a_history_with_forgotten_members() -> None:
    world = protected_world()
    ann_and_bob(world)
    world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")
    world.send(AcquireLicense, "bob", device_id="tab", title_id="film-a")
    requests = [r.command.name for r in recorded_requests(world.store)]
    assert "ForgetMember" in requests
    report = whatif(world.store, make_rules(title_limit=1), catalogue=world.catalogue)
    assert report.requests == len(requests)
    assert report.not_applicable == {}  # the forgetting replays as recorded


def test_the_simulator_forgets_members_on_request_and_what_if_replays_them() -> None:
    store = open_store("memory://")
    store.protect(KEK, personal_data())
    report = simulate(store, members=40, days=365, seed=3, forget_share=1.0)
    assert report.members_forgotten > 0
    assert report.commands_by_type["ForgetMember"] == report.members_forgotten
    forgotten = store.key_store.forgotten() if store.key_store else {}
    assert len(forgotten) == report.members_forgotten
    names = [(r.stream_id, r.data["device_name"]) for r in store.read_all() if r.event_type == "DeviceRegistered"]
    assert {n for s, n in names if s.removeprefix("member-") in forgotten} == {FORGOTTEN}
    assert all(n != FORGOTTEN and n for s, n in names if s.removeprefix("member-") not in forgotten)
    assert whatif(store, load_rules()).requests > 0


def test_a_simulation_without_forgetting_is_unchanged_by_it() -> None:
    plain, with_names = open_store("memory://"), open_store("memory://")
    with_names.protect(KEK, personal_data())
    a = simulate(plain, members=20, days=60, seed=3)
    b = simulate(with_names, members=20, days=60, seed=3)
    assert (a.commands, a.events, a.grants, a.denials, a.members_forgotten) == (
        b.commands, b.events, b.grants, b.denials, 0
    )


def test_retention_archives_stay_sealed_and_are_shredded_with_the_member(tmp_path: Path) -> None:
    world = protected_world()
    ann_and_bob(world)
    for n in range(4):
        world.acquire("show-y" if n % 2 else "film-a", member="ann", device="tab")
    archive = JsonlArchive(tmp_path / "members.jsonl")
    report = apply_retention(
        [world.service.repository], [RetentionPolicy(category="member", keep_last=1)], archive=archive
    )
    assert report.archived > 0 and report.deleted == report.archived
    assert NAME.encode() not in archive.path.read_bytes()
    opened = [r.data for r in world.store.open_personal(archive.read()) if r.event_type == "DeviceRegistered"]
    assert {d["device_name"] for d in opened} >= {f"ann: {NAME}"}
    world.service.forget_member("ann", T0 + timedelta(days=1), "forget-1")
    reread = [r for r in world.store.open_personal(archive.read()) if r.event_type == "DeviceRegistered"]
    assert {r.stream_id: r.data["device_name"] for r in reread}["member-ann"] == FORGOTTEN
    # the sealed snapshots are unreadable now and the events before them archived: the member
    # still loads, from the unsealed snapshot forget_member took of their non-personal state
    assert world.service.member("ann").state.forgotten


def test_a_snapshot_on_demand_needs_a_saved_aggregate() -> None:
    world = protected_world()
    repository = world.service.repository
    with pytest.raises(InvalidInputError):
        repository.save_snapshot(repository.load("nobody"))  # no events at all
    world.join("ann", devices=())
    snapshot = repository.save_snapshot(repository.load("ann"))
    latest = world.store.latest_snapshot("member-ann")
    assert latest is not None and (latest.version, latest.state) == (snapshot.version, snapshot.state)
