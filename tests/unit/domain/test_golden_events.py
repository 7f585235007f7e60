"""Frozen payloads of every event type and version load into today's classes. Fixtures are
never edited: a changed event gets a new version, a new fixture and an upcaster."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from downloads import EVENT_TYPES, new_registry
from es_core import RecordedEvent

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "events" / "downloads"
FILES = sorted(FIXTURES.glob("*/v*.json"))


def test_every_current_event_version_has_a_fixture() -> None:
    present = {(p.parent.name, int(p.stem[1:])) for p in FILES}
    assert {(c.event_type, c.schema_version) for c in EVENT_TYPES} <= present


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_frozen_payload_loads_into_the_current_class(path: Path) -> None:
    frozen = json.loads(path.read_text(encoding="utf-8"))
    assert frozen["event_type"] == path.parent.name and frozen["schema_version"] == int(path.stem[1:])
    record = RecordedEvent(
        stream_id="member-m00042", version=1, position=1, event_id=uuid.uuid4(), event_type=frozen["event_type"],
        schema_version=frozen["schema_version"], data=frozen["data"], metadata={},
        recorded_at=datetime(2026, 3, 14, tzinfo=UTC),
    )
    events = new_registry().decode(record)
    assert len(events) == 1
    event = events[0]
    assert type(event).event_type == frozen["event_type"]
    for key, value in frozen["data"].items():  # nothing lost on the way in
        loaded = getattr(event, key)
        assert (loaded.isoformat().replace("+00:00", "Z") if isinstance(loaded, datetime) else loaded) == value


def test_every_domain_event_takes_the_registry_s_direct_encoding() -> None:
    """A field type that is not always strict JSON (a float, ``Any``) would send every save of
    that event through the slower checked path: this keeps the domain on the fast one."""
    registry = new_registry()
    slow = [cls.event_type for cls in EVENT_TYPES if not registry.encodes_directly(cls)]
    assert slow == []
