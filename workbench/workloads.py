"""Workloads for the performance notebook: one member with a long history, grown command by
command through one or more download services (e.g. with and without snapshots), so their
stores hold the same events and their load costs can be compared."""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from downloads import (
    AcquireLicense,
    Command,
    CommandRefusedError,
    DownloadService,
    MemberAccount,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RenewLicense,
    Subscribe,
)
from es_core import Repository

Progress = Callable[[int, int], None]


class BusyMember:
    """A premium member with four devices who downloads, plays, renews and deletes every few
    hours, forever. Every command goes to every service, and their outcomes must agree."""

    def __init__(
        self,
        services: Sequence[DownloadService],
        member_id: str = "busy",
        *,
        start: datetime = datetime(2026, 1, 1, 8, 0, tzinfo=UTC),
        seed: int = 0,
        holding: int = 12,
    ) -> None:
        self.services = list(services)
        self.member_id = member_id
        self.stream_id = MemberAccount.stream_id_for(member_id)
        self.rng = random.Random(f"busy:{seed}")
        self.now = start
        self.holding = holding
        self.requests = 0
        self.commands = 0
        self.held: dict[str, datetime] = {}  # licence -> expiry, as the member believes
        self.seconds = [0.0] * len(self.services)  # time spent handling commands, per service
        self.titles = sorted(t.id for t in self.services[0].catalogue.titles())
        self.devices = [f"{member_id}-d{i}" for i in range(1, 5)]
        self._send(lambda rid: Subscribe(member_id=member_id, at=self.now, request_id=rid, plan="premium"))
        for device in self.devices:
            self._send(
                lambda rid, d=device: RegisterDevice(member_id=member_id, at=self.now, request_id=rid, device_id=d)
            )

    @property
    def version(self) -> int:
        return self.services[0].store.stream_version(self.stream_id)

    def _send(self, make: Callable[[str], Command]) -> Any:
        self.requests += 1
        command = make(f"{self.member_id}-{self.requests}")
        outcomes = []
        for i, service in enumerate(self.services):
            saved = service.store.clock
            service.store.clock = lambda: command.at  # recorded times follow the member's time
            started = time.perf_counter()
            try:
                outcomes.append(service.handle(command))
            except CommandRefusedError:
                outcomes.append(None)
            finally:
                self.seconds[i] += time.perf_counter() - started
                service.store.clock = saved
        first = outcomes[0]
        for other in outcomes[1:]:
            same = (first is None and other is None) or (
                first is not None and other is not None and (first.granted, first.rule) == (other.granted, other.rule)
            )
            if not same:
                raise AssertionError(f"services disagree on {command}: {first} vs {other}")
        self.commands += 1
        return first

    def step(self) -> None:
        """One visit: a few hours pass, then one command."""
        rng, member = self.rng, self.member_id
        self.now += timedelta(hours=rng.uniform(1, 8))
        at = self.now
        if self.held and (len(self.held) >= self.holding or rng.random() < 0.45):
            license = rng.choice(sorted(self.held))
            choice = rng.random()
            if choice < 0.3:
                outcome = self._send(
                    lambda rid: PlayDownload(member_id=member, at=at, request_id=rid, license_id=license)
                )
            elif choice < 0.55:
                outcome = self._send(
                    lambda rid: RenewLicense(member_id=member, at=at, request_id=rid, license_id=license)
                )
                if outcome is not None and not outcome.granted:
                    self._send(lambda rid: ReleaseLicense(member_id=member, at=at, request_id=rid, license_id=license))
                    self.held.pop(license, None)
            else:
                self._send(lambda rid: ReleaseLicense(member_id=member, at=at, request_id=rid, license_id=license))
                self.held.pop(license, None)
            return
        device, title = rng.choice(self.devices), rng.choice(self.titles)
        outcome = self._send(
            lambda rid: AcquireLicense(member_id=member, at=at, request_id=rid, device_id=device, title_id=title)
        )
        if outcome is not None and outcome.granted and outcome.license_id:
            self.held[outcome.license_id] = at

    def grow_to(self, events: int, *, progress: Progress | None = None) -> int:
        """Send commands until the member's stream holds at least ``events`` events."""
        start = self.version
        while (version := self.version) < events:
            self.step()
            if progress is not None and self.commands % 25 == 0:
                progress(version - start, events - start)
        if progress is not None:
            progress(self.version - start, max(events - start, self.version - start))
        return self.version


def measure_load(repository: Repository[Any], aggregate_id: str, *, repeats: int = 5) -> dict[str, Any]:
    """Load ``aggregate_id`` ``repeats`` times (never from a cache) and report the median time,
    how many events the load replayed, and the snapshot it started from."""
    timings = []
    aggregate = None
    collecting = gc.isenabled()
    gc.disable()  # as timeit does: a collection landing in one load would swamp it
    try:
        for _ in range(repeats):
            repository.forget(aggregate_id)
            started = time.perf_counter()
            aggregate = repository.load(aggregate_id)
            timings.append(time.perf_counter() - started)
    finally:
        if collecting:
            gc.enable()
    assert aggregate is not None
    return {
        "events": aggregate.version,
        "ms_per_load": round(statistics.median(timings) * 1000, 3),
        "replayed": aggregate.replayed_on_load,
        "snapshot_version": aggregate.snapshot_version,
    }
