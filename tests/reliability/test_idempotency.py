"""Idempotency, small: commands sent up to 3 times, some at once, some later via another server;
and the bugs it found, each reproduced in a few lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from downloads import (
    AcquireLicense,
    DownloadService,
    LicenseNotHeldError,
    RegisterDevice,
    ReleaseLicense,
    Subscribe,
    new_registry,
)
from es_core import SnapshotPolicy, open_store
from reliability.idempotency import run_idempotency
from reliability.invariants import serial_replay
from reliability.workload import ScenarioService

T = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def test_retries_never_write_an_event_twice(tmp_path: Path) -> None:
    result = run_idempotency(tmp_path, seed=5, commands=80)
    assert not result.error, result.error
    assert result.duplicates == 0, result.problems
    assert result.faults > 40  # resubmissions
    assert all(result.figures["commands_resent_by_mode"].values())


def test_retries_get_the_first_answer_and_the_reference_events(tmp_path: Path) -> None:
    result = run_idempotency(tmp_path, seed=7, commands=150)
    assert result.status == "ok", result.problems


def test_retries_get_the_same_reason_text(tmp_path: Path) -> None:
    result = run_idempotency(tmp_path, seed=5, commands=40)
    assert result.figures["reason_text_differs"] == 0


def _two_servers(policy: SnapshotPolicy | None = None) -> tuple[DownloadService, DownloadService]:
    store = open_store("memory://")
    kwargs = {"cache_size": 16} | ({"snapshot_policy": policy} if policy else {})
    return ScenarioService(store, **kwargs), ScenarioService(store, **kwargs)


def test_a_retry_reaching_a_stale_cache_is_answered_not_refused() -> None:
    first, stale = _two_servers()
    first.handle(Subscribe(member_id="m", at=T, request_id="join", plan="standard"))
    stale.handle(RegisterDevice(member_id="m", at=T, request_id="phone", device_id="phone"))  # caches m at v2
    granted = first.handle(
        AcquireLicense(member_id="m", at=T, request_id="get", device_id="phone", title_id="silver-harbour")
    )
    release = ReleaseLicense(member_id="m", at=T, request_id="delete", license_id=granted.license_id or "")
    assert first.handle(release).granted
    try:
        again = stale.handle(release)  # the client's retry reaches the other server
    except LicenseNotHeldError as exc:
        pytest.fail(f"the retry was refused on a stale cache: {exc}")
    assert again.duplicate and again.granted


def test_a_retry_reaching_a_stale_cache_leaves_no_wrong_snapshot() -> None:
    first, stale = _two_servers(SnapshotPolicy(every=2, keep=5))
    first.handle(Subscribe(member_id="m", at=T, request_id="join", plan="premium"))
    stale.handle(RegisterDevice(member_id="m", at=T, request_id="phone", device_id="phone"))  # caches m at v2
    for device in ("tablet", "tv", "car"):
        first.handle(RegisterDevice(member_id="m", at=T, request_id=device, device_id=device))
    download = AcquireLicense(member_id="m", at=T, request_id="get", device_id="phone", title_id="silver-harbour")
    first.handle(download)
    assert stale.handle(download).duplicate  # recognised as a retry: nothing written...
    loaded = DownloadService(first.store).member("m")  # ...but what does the member load as now?
    replayed = serial_replay(first.store, "m", new_registry())
    assert sorted(loaded.state.devices) == ["car", "phone", "tablet", "tv"]
    assert msgspec.json.encode(loaded.state) == msgspec.json.encode(replayed.state)
