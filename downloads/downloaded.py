"""Downloaded: how many times a member downloaded one title (Netflix's *Downloaded* aggregate),
for the per-title limit over a rolling year (and, all of a studio's titles together, for the
per-studio yearly count).

Its history is the member's ``LicenseAcquired`` and ``LicenseRenewed`` events of the title. It
keeps every download and renewal within ``HISTORY_HORIZON_DAYS`` whatever today's rules count,
so a rule change (a longer window, renewals no longer counting) needs no migration.

Every time here is service time: when the service decided the download (the event's
``decided_at``), never the client's claim, so no client clock can move a download out of a
window or trim the history early.

Window semantics: a download at ``t`` counts against a decision at ``now`` while ``now - window < t``;
it stops counting at exactly ``t + window``. Downloads decided *after* ``now`` count too: a command
can be decided in the service's past (a reconciled provisional grant, two servers a few
milliseconds apart), and its grant must keep every window holding it within the limit. With a
limit ``L`` and ``c >= L`` counted downloads (oldest first ``t0 <= t1 <= ...``), the member may
download again at ``t[c - L] + window``.
"""

from __future__ import annotations

from bisect import insort
from datetime import datetime, timedelta

import msgspec

from .rules import HISTORY_HORIZON_DAYS

_HORIZON = timedelta(days=HISTORY_HORIZON_DAYS)


class Download(msgspec.Struct, array_like=True, gc=False):
    at: datetime
    renewal: bool = False


class DownloadedState(msgspec.Struct, kw_only=True, gc=False, array_like=True):
    title_id: str
    studio_id: str
    downloads: list[Download] = []  # in time order


class Downloaded:
    """Decisions and evolution of one title's download count; ``state`` is the member's entry."""

    __slots__ = ("state",)

    def __init__(self, state: DownloadedState) -> None:
        self.state = state

    @staticmethod
    def empty(title_id: str, studio_id: str) -> DownloadedState:
        return DownloadedState(title_id=title_id, studio_id=studio_id)

    # -- decisions -----------------------------------------------------------------------

    def counted(self, at: datetime, window: timedelta, *, include_renewals: bool) -> list[datetime]:
        """Times of the downloads that count against a decision at ``at``, oldest first: those
        stamped after ``at - window``, including any stamped later than ``at``."""
        since = at - window
        return [d.at for d in self.state.downloads if since < d.at and (include_renewals or not d.renewal)]

    def free_again_at(self, at: datetime, window: timedelta, limit: int, *, include_renewals: bool) -> datetime | None:
        """When the member may download again, or None if they may now."""
        return _free_again(self.counted(at, window, include_renewals=include_renewals), window, limit)

    @staticmethod
    def free_again_among(
        states: list[DownloadedState], at: datetime, window: timedelta, limit: int, *, include_renewals: bool
    ) -> datetime | None:
        """``free_again_at`` over several titles' downloads together (a studio's)."""
        times = sorted(t for s in states for t in Downloaded(s).counted(at, window, include_renewals=include_renewals))
        return _free_again(times, window, limit)

    def outlook(
        self, at: datetime, window: timedelta, limit: int, *, include_renewals: bool, adding: bool
    ) -> tuple[int, datetime | None]:
        """(downloads left, when the oldest counted one stops counting), after one more download
        at ``at`` if ``adding``."""
        times = self.counted(at, window, include_renewals=include_renewals)
        if adding:
            insort(times, at)  # later-stamped downloads may already be counted
        return limit - len(times), (times[0] + window if times else None)

    # -- evolution: a LicenseAcquired or LicenseRenewed of this title -------------------

    def downloaded(self, at: datetime, *, renewal: bool) -> None:
        downloads = self.state.downloads
        oldest_kept = at - _HORIZON
        if downloads and downloads[0].at <= oldest_kept:
            downloads[:] = [d for d in downloads if d.at > oldest_kept]
        insort(downloads, Download(at, renewal), key=_at)  # one decided in the service's past stays in order


def _at(download: Download) -> datetime:
    return download.at


def _free_again(times: list[datetime], window: timedelta, limit: int) -> datetime | None:
    if len(times) < limit:
        return None
    return times[len(times) - limit] + window
