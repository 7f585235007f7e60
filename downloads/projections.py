"""Read models built from the global log: each can be rebuilt from zero, and each gives
``rows()`` (plain dicts) that the notebook layer turns into a DataFrame. The domain itself never
imports pandas.

Each model also ``merge``s another copy of itself built from other members' streams (its
keys are per member, or counts that add up), so models built over the splits of a store
(``EventStore.split``, ``downloads.scaleout.rebuild``) merge into the serial rebuild's.

``ReadModels`` feeds the four through one durable subscription (``es_core.subscriptions``) with
checkpoints in memory: the models and their position change under one lock, so a reader that
holds ``ReadModels.lock`` sees models and position that belong together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from es_core import Decoded, EventRegistry, EventStore, InvalidPositionError
from es_core.projections import Progress
from es_core.subscriptions import Delivery, MemoryCheckpoints, Subscription, SubscriptionAdmin, SubscriptionStatus

from .events import (
    DeviceRegistered,
    DeviceRemoved,
    DownloadDenied,
    LicenseAcquired,
    LicenseExpired,
    LicensePlayed,
    LicenseReleased,
    LicenseRenewed,
    new_registry,
)
from .member import MemberAccount

_PREFIX = MemberAccount.aggregate_type + "-"


def member_of(item: Decoded | Delivery) -> str | None:
    """The member a record belongs to (None for streams that are not members)."""
    stream = item.record.stream_id
    return stream[len(_PREFIX):] if stream.startswith(_PREFIX) else None


def _day(moment: datetime) -> date:
    return moment.date()  # events carry UTC times, so this is the UTC day


class ActiveLicenses:
    """Licences held right now, by member, device and title (``holders`` feeds a title's
    withdrawal). A held licence past ``expires_at`` needs renewal but still holds its slot."""

    name = "active_licenses"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._licenses: dict[str, dict[str, Any]] = {}
        self._holders: dict[str, Counter[str]] = {}
        self._acquired: dict[str, int] = {}  # licence -> log position of its acquisition: the rows' order

    def handle(self, item: Decoded | Delivery) -> None:
        e = item.event
        if isinstance(e, LicenseAcquired):
            member = member_of(item) or ""
            self._acquired[e.license_id] = item.record.position
            self._licenses[e.license_id] = {
                "member_id": member, "device_id": e.device_id, "license_id": e.license_id, "title_id": e.title_id,
                "studio_id": e.studio_id, "acquired_at": e.at, "expires_at": e.expires_at, "renewals": 0,
            }
            self._holders.setdefault(e.title_id, Counter())[member] += 1
        elif isinstance(e, LicenseRenewed | LicensePlayed):
            row = self._licenses.get(e.license_id)
            if row is not None:
                row["expires_at"] = e.expires_at
                row["renewals"] += isinstance(e, LicenseRenewed)
        elif isinstance(e, LicenseReleased | LicenseExpired):
            row = self._licenses.pop(e.license_id, None)
            self._acquired.pop(e.license_id, None)
            if row is not None:
                holders = self._holders[row["title_id"]]
                holders[row["member_id"]] -= 1
                if holders[row["member_id"]] <= 0:
                    del holders[row["member_id"]]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._licenses.values()]

    def merge(self, other: ActiveLicenses) -> None:
        """Add the licences of other members; rows stay in the order of the log."""
        self._acquired.update(other._acquired)
        merged = {**self._licenses, **other._licenses}
        self._licenses = {k: merged[k] for k in sorted(merged, key=self._acquired.__getitem__)}
        for title, members in other._holders.items():
            self._holders.setdefault(title, Counter()).update(members)

    def holders(self, title_id: str) -> list[str]:
        return sorted(self._holders.get(title_id, ()))

    def by_member(self) -> dict[str, int]:
        return dict(sorted(Counter(r["member_id"] for r in self._licenses.values()).items()))

    def by_device(self) -> dict[tuple[str, str], int]:
        return dict(sorted(Counter((r["member_id"], r["device_id"]) for r in self._licenses.values()).items()))

    def __len__(self) -> int:
        return len(self._licenses)


class DownloadsPerTitleDay:
    """Granted downloads and renewals per title per (UTC) day."""

    name = "downloads_per_title_day"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._counts: dict[tuple[date, str], list[int]] = {}
        self._studio: dict[str, str] = {}

    def handle(self, item: Decoded | Delivery) -> None:
        e = item.event
        if isinstance(e, LicenseAcquired):
            self._studio[e.title_id] = e.studio_id
            self._counts.setdefault((_day(e.at), e.title_id), [0, 0])[0] += 1
        elif isinstance(e, LicenseRenewed):
            self._counts.setdefault((_day(e.at), e.title_id), [0, 0])[1] += 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"day": day, "title_id": title, "studio_id": self._studio.get(title, ""), "downloads": d, "renewals": r}
            for (day, title), (d, r) in sorted(self._counts.items())
        ]

    def merge(self, other: DownloadsPerTitleDay) -> None:
        for key, (downloads, renewals) in other._counts.items():
            counts = self._counts.setdefault(key, [0, 0])
            counts[0] += downloads
            counts[1] += renewals
        self._studio.update(other._studio)

    def total(self, title_id: str | None = None) -> int:
        return sum(d + r for (_, t), (d, r) in self._counts.items() if title_id is None or t == title_id)


class DenialsByRule:
    """Denied downloads and renewals per rule per (UTC) day."""

    name = "denials_by_rule"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._counts: Counter[tuple[date, str, str]] = Counter()

    def handle(self, item: Decoded | Delivery) -> None:
        e = item.event
        if isinstance(e, DownloadDenied):
            self._counts[(_day(e.at), e.rule, e.action)] += 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"day": day, "rule": rule, "action": action, "denials": n}
            for (day, rule, action), n in sorted(self._counts.items())
        ]

    def merge(self, other: DenialsByRule) -> None:
        self._counts.update(other._counts)

    def totals(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (_, rule, _), n in self._counts.items():
            totals[rule] += n
        return dict(sorted(totals.items()))


class DevicesPerMember:
    """Registered devices and devices holding downloads, per member."""

    name = "devices_per_member"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._devices: dict[str, dict[str, int]] = {}  # member -> device -> licences held
        self._license_device: dict[str, tuple[str, str]] = {}

    def handle(self, item: Decoded | Delivery) -> None:
        e = item.event
        member = member_of(item)
        if member is None:
            return
        if isinstance(e, DeviceRegistered):
            self._devices.setdefault(member, {})[e.device_id] = 0
        elif isinstance(e, DeviceRemoved):
            self._devices.get(member, {}).pop(e.device_id, None)
        elif isinstance(e, LicenseAcquired):
            devices = self._devices.setdefault(member, {})
            devices[e.device_id] = devices.get(e.device_id, 0) + 1
            self._license_device[e.license_id] = (member, e.device_id)
        elif isinstance(e, LicenseReleased | LicenseExpired):
            owner = self._license_device.pop(e.license_id, None)
            if owner is not None and owner[1] in self._devices.get(owner[0], {}):
                self._devices[owner[0]][owner[1]] -= 1

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"member_id": m, "devices": len(d), "devices_holding_downloads": sum(1 for n in d.values() if n > 0)}
            for m, d in sorted(self._devices.items())
        ]

    def merge(self, other: DevicesPerMember) -> None:
        """Add other members' devices (a member's events are all in one split)."""
        self._devices.update(other._devices)
        self._license_device.update(other._license_device)


class ReadModels:
    """The four read models, fed by one subscription over a store's global log.

    ``catch_up()`` handles every event up to the store's settled position (from where the last
    call stopped); ``rebuild()`` resets the four and replays from zero; ``status()`` gives the
    position, the store's head and the lag. A hole in the feed raises ``StreamGapError``."""

    NAME = "downloads.read_models"

    def __init__(self, store: EventStore, registry: EventRegistry | None = None, *, page_size: int = 1000) -> None:
        (self.active_licenses, self.downloads_per_title_day, self.denials_by_rule,
         self.devices_per_member) = self.fresh_models()
        self.store = store
        self.checkpoints = MemoryCheckpoints()
        self.lock = self.checkpoints.lock
        self._handlers = [p.handle for p in self.all()]
        self.subscription = Subscription(
            store, self.checkpoints, self.NAME, self._handle, registry=registry or new_registry(),
            on_reset=self._reset, page_size=page_size, on_poison="stop", max_attempts=1,
        )

    def all(self) -> Iterable[Any]:
        return (self.active_licenses, self.downloads_per_title_day, self.denials_by_rule, self.devices_per_member)

    def _handle(self, item: Delivery) -> None:
        for handle in self._handlers:
            handle(item)  # a Delivery carries .record and .event, as Decoded does

    def _reset(self, _tx: object, position: int) -> None:
        if position != 0:
            raise InvalidPositionError("the domain read models rebuild from zero only")
        for projection in self.all():
            projection.reset()

    @property
    def position(self) -> int:
        return self.subscription.position

    def catch_up(self, *, progress: Progress | None = None) -> int:
        """Handle the events after the last position handled, up to the settled position."""
        return self.subscription.catch_up(progress=progress)

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Reset the four models and replay the whole log."""
        return self.subscription.rebuild(progress=progress)

    def status(self) -> SubscriptionStatus:
        return SubscriptionAdmin(self.store, self.checkpoints).status([self.NAME])[0]

    def merge(self, models: Iterable[Any]) -> None:
        """Add models built from other members' streams, given in ``all()``'s order (fresh
        models fed one split of the store each: ``downloads.scaleout.rebuild``)."""
        with self.lock:
            for mine, theirs in zip(self.all(), models, strict=True):
                mine.merge(theirs)

    def mark_rebuilt(self, position: int, handled: int) -> None:
        """Fresh models ``merge``d from models built over the splits of the log cut at
        ``position`` (``handled`` records in all) stand where ``rebuild()`` up to ``position``
        leaves them: the subscription's position is stored as ``position``, so ``catch_up()``
        goes on from there."""
        sub = self.subscription
        if sub.position != 0:
            raise InvalidPositionError("only fresh read models (at position 0) take a rebuilt position")
        if type(position) is not int or not 0 <= position <= self.store.head_position():
            raise InvalidPositionError(f"position must be an int from 0 to the store's head, not {position!r}")
        state = self.checkpoints.acquire(self.NAME, sub.owner, sub.lease_seconds)
        try:
            with self.checkpoints.page(self.NAME, sub.owner, state.position, state.lease_until) as page:
                page.position = position
        finally:
            self.checkpoints.release(self.NAME, sub.owner)
        sub.position, sub.delivered = position, handled

    @staticmethod
    def fresh_models() -> tuple[Any, ...]:
        """Empty models in ``all()``'s order, fed by hand (one split's records, say)."""
        return (ActiveLicenses(), DownloadsPerTitleDay(), DenialsByRule(), DevicesPerMember())
