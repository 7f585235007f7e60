"""Pictures of the ideas, checked against the objects they are drawn from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import downloads
from es_core import JsonlArchive, MemoryStore, NewEvent, Repository, SnapshotPolicy, archive_before_snapshot
from workbench import (
    PROTOTYPE_LOG,
    BusyMember,
    import_jsonl,
    log_diagram,
    migration_flows,
    migration_sankey,
    partition_diagram,
    planned_partitions,
    snapshot_diagram,
    trace_view,
)


def test_the_log_diagram_puts_each_event_at_its_position_with_its_version(store) -> None:  # type: ignore[no-untyped-def]
    figure = log_diagram(store.read_all())
    lanes = {trace.name: (list(trace.x), list(trace.text)) for trace in figure.data}
    assert lanes == {"member-ana": ([1, 2, 5], ["v1", "v2", "v3"]), "member-ben": ([3, 4], ["v1", "v2"])}
    with pytest.raises(ValueError):
        log_diagram([])


@pytest.fixture(scope="module")
def busy_store() -> MemoryStore:
    store = MemoryStore()
    service = downloads.DownloadService(store, snapshot_policy=SnapshotPolicy(every=40, keep=2), cache_size=2)
    BusyMember([service], member_id="busy").grow_to(130)
    return store


def _spans(figure) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {trace.name: trace.text[0] for trace in figure.data if trace.type == "bar"}


def test_the_snapshot_diagram_shows_the_covered_versions_and_the_tail(busy_store: MemoryStore) -> None:
    latest = busy_store.latest_snapshot("member-busy")
    head = busy_store.stream_version("member-busy")
    spans = _spans(snapshot_diagram(busy_store, "member-busy"))
    assert spans == {
        "covered by the latest snapshot": f"v1..v{latest.version}",
        "tail: replayed on every load": f"v{latest.version + 1}..v{head}",
    }


def test_after_retention_the_diagram_shows_what_was_archived(busy_store: MemoryStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    repository = Repository(busy_store, downloads.new_registry(), downloads.MemberAccount)
    removed = archive_before_snapshot(repository, "busy", JsonlArchive(tmp_path / "a.jsonl"))
    spans = _spans(snapshot_diagram(busy_store, "member-busy"))
    assert spans["archived (not in the store)"] == f"v1..v{removed}"


def test_planned_partitions_keep_an_append_whole_in_the_bucket_of_its_first_version() -> None:
    store = MemoryStore()
    at = datetime(2026, 1, 1, tzinfo=UTC).isoformat()

    def append(n: int, request: str) -> None:
        events = [NewEvent(event_type="E", data={"at": at}, metadata={"request_id": request}) for _ in range(n)]
        store.append("s", events)

    append(3, "a")  # versions 1-3: bucket 0
    append(3, "b")  # versions 4-6 start in bucket 0 (width 5) and stay there whole
    append(2, "c")  # versions 7-8: bucket 1
    plan = planned_partitions(store.read_stream("s"), 5)
    assert plan[["bucket", "rows", "first_version", "last_version"]].values.tolist() == [[0, 6, 1, 6], [1, 2, 7, 8]]
    figure = partition_diagram(plan, 5)
    assert [trace.name for trace in figure.data] == ["(s, 0)", "(s, 1)"]


@pytest.fixture(scope="module")
def legacy() -> MemoryStore:
    store = MemoryStore()
    import_jsonl(store, PROTOTYPE_LOG)
    return store


def _prototype_registry():  # type: ignore[no-untyped-def]
    """The upcasters of notebook 5, enough of them for every prototype shape."""
    registry = downloads.new_registry()
    catalogue = downloads.load_catalogue()
    studio_of = {title.id: title.studio_id for title in catalogue.titles()}

    def ts_to_at(data: dict) -> dict:  # type: ignore[type-arg]
        data = dict(data)
        data["at"] = datetime.fromtimestamp(data.pop("ts") / 1000, UTC).isoformat()
        return data

    def with_expiry(data: dict) -> dict:  # type: ignore[type-arg]
        from datetime import timedelta

        data = dict(data)
        data["expires_at"] = (
            datetime.fromisoformat(data["at"]) + timedelta(hours=data.pop("duration_hours"))
        ).isoformat()
        return data

    for event_type in ("MemberJoined", "LicenseExtended", "DownloadRefused", "DownloadDeleted"):
        registry.add_upcaster(event_type, 1, ts_to_at)
    registry.add_upcaster("DeviceAdded", 1, lambda d: {**ts_to_at(d), "kind": ""})
    registry.add_upcaster("DeviceSwapped", 1, lambda d: {**ts_to_at(d), "kind": ""})
    registry.add_upcaster("LicenseGranted", 1, lambda d: {**ts_to_at(d), "studio_id": studio_of[d["title_id"]]})
    codes = {"DEVICE_LIMIT": "devices_per_plan", "YEARLY_LIMIT": "title_downloads_per_year",
             "STUDIO_LIMIT": "studio_active_downloads"}  # fmt: skip
    registry.rename_type("MemberJoined", 2, "MemberSubscribed", 1, transform=lambda d: {**d, "plan": d["plan"].lower()})
    registry.rename_type("DeviceAdded", 2, "DeviceRegistered", 1)
    registry.rename_type("LicenseGranted", 2, "LicenseAcquired", 1, transform=with_expiry)
    registry.rename_type("LicenseExtended", 2, "LicenseRenewed", 1, transform=with_expiry)
    registry.rename_type("DownloadDeleted", 2, "LicenseReleased", 1, transform=lambda d: {**d, "reason": "deleted"})
    registry.rename_type(
        "DownloadRefused", 2, "DownloadDenied", 1,
        transform=lambda d: {"action": "acquire", "rule": codes[d["code"]], "reason": d["code"],
                             "device_id": d["device_id"], "title_id": d["title_id"],
                             "studio_id": studio_of[d["title_id"]], "at": d["at"]},
    )  # fmt: skip
    registry.split(
        "DeviceSwapped", 2,
        lambda d: [("DeviceRegistered", 1, {"device_id": d["new_device_id"], "kind": d["kind"], "at": d["at"]}),
                   ("DeviceRemoved", 1, {"device_id": d["old_device_id"], "at": d["at"]})],
        into=[("DeviceRegistered", 1), ("DeviceRemoved", 1)],
    )  # fmt: skip
    registry.retire("LicenseChecked", upto_version=2)
    return registry


def test_migration_flows_account_for_every_stored_event(legacy: MemoryStore) -> None:
    registry = _prototype_registry()
    flows = migration_flows(legacy.read_all(), registry)
    census = legacy.schema_census()
    swapped = sum(n for (t, _), n in census.items() if t == "DeviceSwapped")
    assert flows["events"].sum() == sum(census.values()) + swapped, "a split makes two events of one"
    retired = flows[flows["target"] == "retired (dropped on read)"]
    assert retired["events"].sum() == sum(n for (t, _), n in census.items() if t == "LicenseChecked")
    kinds = dict(zip(flows["source"], flows["step"], strict=False))
    assert kinds["MemberJoined v1"] == "upcast + rename" and kinds["DeviceSwapped v2"] == "split"
    sankey = migration_sankey(flows)
    link, stored_shapes = sankey.data[0].link, flows["source"].nunique()
    assert sum(link.value) == flows["events"].sum()
    assert all(s < stored_shapes <= t for s, t in zip(link.source, link.target, strict=True)), "stored left, read right"


def test_trace_view_shows_each_step_of_one_event(legacy: MemoryStore) -> None:
    registry = _prototype_registry()
    swapped = next(r for r in legacy.read_all() if (r.event_type, r.schema_version) == ("DeviceSwapped", 1))
    markup = trace_view(registry, swapped)._repr_html_()
    assert "1. upcast DeviceSwapped v1 → DeviceSwapped v2" in markup
    assert "2. split DeviceSwapped v2 → DeviceRegistered v1, DeviceRemoved v1" in markup
    assert "read by today&#x27;s code as" in markup or "read by today's code as" in markup
