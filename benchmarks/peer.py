"""The peer: the ``eventsourcing`` library (9.5.x) on SQLite, with the workload's member account.

Imported lazily by the runner: ``eventsourcing`` is an optional, benchmark-only dependency
(``pip install 'es-workbench[bench]'``). The aggregate lives at module level because the library
finds event classes again by their import path when it reads them back.

Equivalence with es_core's ``MemberAccount``: the same commands check the same rules and record
events with the same names and the same payload fields (the library adds its own envelope:
originator id, version and timestamp). Commands check, then call a private ``@event`` method
whose body is the state change, as the library's documentation recommends.

Durability: the library opens its SQLite file in WAL mode and leaves ``synchronous`` at SQLite's
default, FULL (2) for this build; ``sqlite_settings`` reports what the connection really uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from .workload import CommandRefused

_NAMESPACE = uuid.UUID("0c2b8f53-5d8e-4d0b-9a37-1c9f6f4a2e10")


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("eventsourcing")


def account_id(member_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, member_id)


class PeerMemberAccount(Aggregate):
    """The workload's member account written for the peer library."""

    @staticmethod
    def create_id(member_id: str, **_: Any) -> uuid.UUID:
        return account_id(member_id)

    @event("AccountOpened")
    def __init__(self, member_id: str, plan: str, country: str, opened_at: str) -> None:
        self.member_id, self.plan, self.country = member_id, plan, country
        self.devices: dict[str, str] = {}
        self.active: dict[str, dict[str, str]] = {}
        self.acquired = self.renewed = self.released = 0

    def register_device(self, *, device_id: str, model: str, registered_at: str) -> None:
        if device_id in self.devices:
            raise CommandRefused(f"{device_id} is registered already")
        self._device_registered(device_id=device_id, model=model, registered_at=registered_at)

    @event("DeviceRegistered")
    def _device_registered(self, device_id: str, model: str, registered_at: str) -> None:
        self.devices[device_id] = model

    def acquire_license(
        self, *, license_id: str, title_id: str, title: str, studio: str, device_id: str, acquired_at: str,
        expires_at: str,
    ) -> None:
        if device_id not in self.devices or license_id in self.active:
            raise CommandRefused(f"{license_id} cannot be acquired on {device_id}")
        self._license_acquired(
            license_id=license_id, title_id=title_id, title=title, studio=studio, device_id=device_id,
            acquired_at=acquired_at, expires_at=expires_at,
        )

    @event("LicenseAcquired")
    def _license_acquired(
        self, license_id: str, title_id: str, title: str, studio: str, device_id: str, acquired_at: str,
        expires_at: str,
    ) -> None:
        self.active[license_id] = {"title_id": title_id, "device_id": device_id, "expires_at": expires_at}
        self.acquired += 1

    def renew_license(self, *, license_id: str, title_id: str, renewed_at: str, expires_at: str) -> None:
        if license_id not in self.active:
            raise CommandRefused(f"{license_id} is not held")
        self._license_renewed(license_id=license_id, title_id=title_id, renewed_at=renewed_at, expires_at=expires_at)

    @event("LicenseRenewed")
    def _license_renewed(self, license_id: str, title_id: str, renewed_at: str, expires_at: str) -> None:
        self.active[license_id]["expires_at"] = expires_at
        self.renewed += 1

    def release_license(
        self, *, license_id: str, title_id: str, device_id: str, released_at: str, reason: str
    ) -> None:
        if license_id not in self.active:
            raise CommandRefused(f"{license_id} is not held")
        self._license_released(
            license_id=license_id, title_id=title_id, device_id=device_id, released_at=released_at, reason=reason
        )

    @event("LicenseReleased")
    def _license_released(
        self, license_id: str, title_id: str, device_id: str, released_at: str, reason: str
    ) -> None:
        del self.active[license_id]
        self.released += 1


def open_account(command_args: dict[str, str]) -> PeerMemberAccount:
    """The peer creates an aggregate by constructing it (its first event is the constructor's)."""
    return PeerMemberAccount(**command_args)


class PeerApp(Application[uuid.UUID]):
    """A plain application: no cache, so every ``get`` replays from the store."""

    name = "DownloadsPeer"


def open_app(path: Path, *, snapshot_every: int | None = None) -> PeerApp:
    """The peer application on its own SQLite file; with ``snapshot_every``, it snapshots every
    that many events, as configured by the library's ``snapshotting_intervals``."""
    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    if snapshot_every is None:
        return PeerApp(env=env)
    cls = type("DownloadsPeerSnapshotting", (PeerApp,), {"snapshotting_intervals": {PeerMemberAccount: snapshot_every}})
    return cls(env=env)


def sqlite_settings(app: PeerApp) -> dict[str, Any]:
    """What the library's SQLite connection actually runs with (journal mode, synchronous)."""
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    return {"journal_mode": str(journal).upper(), "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
        synchronous, str(synchronous))}


def _log_pages(app: PeerApp, page_size: int) -> Iterator[list[Any]]:
    """The global log's notifications in order, a page at a time."""
    recorder = app.recorder
    start = 1
    while page := recorder.select_notifications(start, page_size):
        yield page
        start = page[-1].id + 1


def read_log(app: PeerApp, page_size: int = 1000) -> Iterator[tuple[str, dict[str, Any]]]:
    """The global log in order, each payload decoded to a dict by the library's transcoder:
    the least work the peer does to hand a reader decoded events."""
    decode = app.mapper.transcoder.decode
    for page in _log_pages(app, page_size):
        for n in page:
            yield n.topic, decode(n.state)


def read_log_typed(app: PeerApp, page_size: int = 1000) -> Iterator[Any]:
    """The global log as the library's typed domain events (what its projections consume)."""
    to_event = app.mapper.to_domain_event
    for page in _log_pages(app, page_size):
        for n in page:
            yield to_event(n)


def stored_bytes(app: PeerApp) -> tuple[int, int]:
    """(events, total bytes of their stored state): to check payload sizes are equivalent."""
    with app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(state)), 0) FROM stored_events")
        count, total = cursor.fetchone()
    return int(count), int(total)
