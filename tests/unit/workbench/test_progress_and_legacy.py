"""Progress callbacks, recorded legacy logs and copy-and-transform migrations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from es_core import EventRegistry, MemoryStore
from workbench import ProgressBar, copy_transform, import_jsonl, progress_bar, track
from workbench.legacy import PROTOTYPE_LOG, read_jsonl


def test_progress_bar_follows_cumulative_callbacks() -> None:
    bar = ProgressBar("test", total=10, disable=True)
    bar(3, 10)
    bar(3, 10)
    bar(8, 20)
    assert bar.done == 8 and bar.bar.total == 20 and bar.calls == 3
    bar.close()
    with progress_bar("ctx", total=2) as progress:
        progress(2, 2)
    assert list(track(range(3), "t")) == [0, 1, 2]


def test_the_prototype_log_is_well_formed_and_old() -> None:
    lines = list(read_jsonl(PROTOTYPE_LOG))
    assert len(lines) > 200
    versions: dict[str, int] = {}
    for line in lines:
        versions[line.stream_id] = versions.get(line.stream_id, 0) + 1
        assert line.version == versions[line.stream_id], "versions count up from 1 without gaps"
        assert line.recorded_at.tzinfo is not None
    shapes = {(line.event_type, line.schema_version) for line in lines}
    assert {("MemberJoined", 1), ("LicenseGranted", 1), ("LicenseGranted", 2), ("LicenseChecked", 2)} <= shapes
    assert [line.recorded_at for line in lines] == sorted(line.recorded_at for line in lines)


def test_import_keeps_ids_shapes_and_times_and_is_idempotent() -> None:
    store = MemoryStore()
    appended = import_jsonl(store, PROTOTYPE_LOG)
    first = next(read_jsonl(PROTOTYPE_LOG))
    stored = store.read_stream(first.stream_id)[0]
    assert appended == store.head_position()
    assert (stored.event_id, stored.schema_version, stored.recorded_at) == (
        first.event_id,
        first.schema_version,
        first.recorded_at,
    )
    assert import_jsonl(store, PROTOTYPE_LOG) == 0
    assert store.clock is not None and store.clock().year >= 2025  # the store's own clock is back


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"stream_id": "s"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        list(read_jsonl(path))


def test_copy_transform_writes_current_shapes_once() -> None:
    from es_core import DomainEvent

    class Joined(DomainEvent, frozen=True, kw_only=True):
        event_type = "Joined"
        plan: str

    source, target = MemoryStore(), MemoryStore()
    import_jsonl(source, PROTOTYPE_LOG)
    registry = EventRegistry(Joined)
    registry.add_upcaster("MemberJoined", 1, lambda d: {"plan": d["plan"]})
    registry.rename_type("MemberJoined", 2, "Joined", 1, transform=lambda d: {"plan": d["plan"].lower()})
    for event_type in {t for t, _ in source.schema_census()} - {"MemberJoined"}:
        registry.retire(event_type, 9)
    calls: list[tuple[int, int]] = []
    report = copy_transform(source, target, registry, progress=lambda d, t: calls.append((d, t)))
    joined = sum(n for (t, _), n in source.schema_census().items() if t == "MemberJoined")
    assert target.schema_census() == {("Joined", 1): joined}
    assert report.events_written == joined and report.dropped == report.records_read - joined
    assert calls[-1] == (report.records_read, report.records_read)
    again = copy_transform(source, target, registry)
    assert again.events_written == 0 and again.skipped + again.dropped == again.records_read
