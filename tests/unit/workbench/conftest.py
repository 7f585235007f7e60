"""Fixtures for the notebook helpers: a small store with two members' stories."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from es_core import EventStore, MemoryStore, NewEvent
from workbench import ManualClock


@pytest.fixture(autouse=True)
def scratch_notebook_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-notebook stores made by these tests go to a temporary folder, not data/local/."""
    module = importlib.import_module("workbench.settings")  # the package's ``settings`` is the function
    monkeypatch.setattr(module, "NOTEBOOK_DATA", tmp_path_factory.mktemp("notebooks"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2024, 3, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def store(clock: ManualClock) -> Iterator[EventStore]:
    store = MemoryStore(clock=clock)
    for member, plan in (("ana", "standard"), ("ben", "basic")):
        clock.advance(minutes=1)
        store.append(
            f"member-{member}",
            [
                NewEvent(event_type="MemberSubscribed", data={"plan": plan, "at": clock().isoformat()}),
                NewEvent(
                    event_type="DeviceRegistered", data={"device_id": f"{member}-phone", "at": clock().isoformat()}
                ),
            ],
        )
    clock.advance(hours=1)
    store.append(
        "member-ana",
        [
            NewEvent(
                event_type="LicenseAcquired", schema_version=2, data={"license_id": "l1", "at": clock().isoformat()}
            )
        ],
    )
    yield store
    store.close()
