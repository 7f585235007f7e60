"""License: one licence issued to one device for one title (Netflix's *License* aggregate).

It lives inside the member's consistency boundary (see ``member.py``): its events are in the
member's stream and name their ``license_id``. This class holds the licence's own decisions
(which events an acquire, renew, first play, expire or release produces) and its evolution
(how those events change ``LicenseState``); the member decides whether the rules allow it.

A licence's dates are service time: it starts when the service granted it (``decided_at``) and
runs for the rules' duration from then, whatever the client's clock said.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from .events import LicenseAcquired, LicenseExpired, LicensePlayed, LicenseReleased, LicenseRenewed
from .rules import RuleSet


class LicenseState(msgspec.Struct, kw_only=True, gc=False, array_like=True):
    """Encoded as an array in snapshots: members hold many licences, and state size is load time.
    ``acquired_at`` and ``first_played_at`` are service times (the events' ``decided_at``)."""

    license_id: str
    device_id: str
    title_id: str
    studio_id: str
    acquired_at: datetime
    expires_at: datetime
    renewals: int = 0
    first_played_at: datetime | None = None


class License:
    """Decisions and evolution of one licence; ``state`` is the member state's entry."""

    __slots__ = ("state",)

    def __init__(self, state: LicenseState) -> None:
        self.state = state

    # -- decisions: return the events, change nothing ------------------------------------

    @staticmethod
    def acquire(
        *,
        license_id: str,
        device_id: str,
        title_id: str,
        studio_id: str,
        at: datetime,
        decided_at: datetime,
        rules: RuleSet,
        remaining: int | None,
        resets_at: datetime | None,
        request_id: str,
    ) -> LicenseAcquired:
        return LicenseAcquired(
            license_id=license_id,
            device_id=device_id,
            title_id=title_id,
            studio_id=studio_id,
            at=at,
            decided_at=decided_at,
            expires_at=decided_at + rules.license_duration(studio_id, title_id),
            remaining=remaining,
            resets_at=resets_at,
            rules=rules.name,
            rules_digest=rules.digest,
            request_id=request_id,
        )

    def renew(
        self,
        at: datetime,
        decided_at: datetime,
        rules: RuleSet,
        remaining: int | None,
        resets_at: datetime | None,
        request_id: str,
    ) -> LicenseRenewed:
        """A renewal starts a fresh viewing window from ``decided_at`` (expired or not)."""
        s = self.state
        return LicenseRenewed(
            license_id=s.license_id,
            title_id=s.title_id,
            at=at,
            decided_at=decided_at,
            expires_at=decided_at + rules.license_duration(s.studio_id, s.title_id),
            remaining=remaining,
            resets_at=resets_at,
            rules=rules.name,
            rules_digest=rules.digest,
            request_id=request_id,
        )

    def play(self, at: datetime, decided_at: datetime, rules: RuleSet, request_id: str) -> LicensePlayed | None:
        """Only the first play of a window is a fact worth recording. With an expiry after
        first play, the window ends that long after the service heard of the play, or at the
        licence's expiry if that is sooner."""
        s = self.state
        if s.first_played_at is not None:
            return None
        after_first_play = rules.after_first_play(s.studio_id, s.title_id)
        expires_at = s.expires_at if after_first_play is None else min(s.expires_at, decided_at + after_first_play)
        return LicensePlayed(
            license_id=s.license_id, title_id=s.title_id, at=at, decided_at=decided_at, expires_at=expires_at,
            rules=rules.name, rules_digest=rules.digest, request_id=request_id,
        )

    def expire(self, at: datetime, reason: str = "title_left_catalogue", request_id: str = "") -> LicenseExpired:
        """End the licence for good (its title left the catalogue)."""
        s = self.state
        return LicenseExpired(license_id=s.license_id, title_id=s.title_id, reason=reason, at=at, request_id=request_id)

    def release(self, at: datetime, reason: str, request_id: str = "") -> LicenseReleased:
        s = self.state
        return LicenseReleased(
            license_id=s.license_id, title_id=s.title_id, reason=reason, at=at, request_id=request_id
        )

    # -- evolution -----------------------------------------------------------------------

    def playable(self, now: datetime) -> bool:
        """Within its viewing window at service time ``now``. Past it, the download stays on the
        device (and holds its slots) but must be renewed to play."""
        return now < self.state.expires_at

    @staticmethod
    def started(event: LicenseAcquired) -> LicenseState:
        return LicenseState(
            license_id=event.license_id,
            device_id=event.device_id,
            title_id=event.title_id,
            studio_id=event.studio_id,
            acquired_at=event.decided_at,
            expires_at=event.expires_at,
        )

    def renewed(self, event: LicenseRenewed) -> None:
        s = self.state
        s.expires_at = event.expires_at
        s.renewals += 1
        s.first_played_at = None

    def played(self, event: LicensePlayed) -> None:
        self.state.first_played_at = event.decided_at
        self.state.expires_at = event.expires_at
