"""Whose clock counts: the service's.

Every command carries ``at``, the time the member's device says it acted. A device's clock may
be wrong by seconds or by years, in either direction, so the service trusts it only within two
bounds from the rule set's ``[clock]`` table, and decides every window on its own clock:

* ``max_skew_minutes``: ``at`` may differ from the service's clock by at most this, either way.
  Further, the command is refused with ``ClockSkewError``.
* ``max_lateness_minutes``: ``at`` may be earlier than the member's latest decision by at most
  this (two devices of one member, a few minutes apart). Earlier, the command is refused with
  ``LateRequestError``; so is a download or renewal dated before the membership began (a
  licence is never dated before it). A late command inside the bound is decided as usual.

What the service decides then runs on service time (the event's ``decided_at``): a licence
starts when it is granted and expires the rules' duration later, a first play shortens the
window from when the service heard of it, and the limits count downloads by when they were
decided. ``at`` is kept as the business time (when the member acted, to within the bounds):
``DownloadService.member(..., happened_by=...)`` rebuilds state by it.

A retry of a remembered request gets its first answer whatever its time (clients re-send with
the first time), so these checks come after the idempotency check.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .commands import Command
from .errors import ClockSkewError, LateRequestError
from .policy import when
from .rules import ClockRule


def check_skew(command: Command, now: datetime, rule: ClockRule) -> None:
    """Refuse ``command`` if its time is further than ``max_skew_minutes`` from ``now``."""
    skew = command.at - now
    if abs(skew) <= rule.max_skew:
        return
    direction = "ahead of" if skew > timedelta(0) else "behind"
    raise ClockSkewError(
        f"request {command.request_id}: its time {when(command.at)} is {_span(abs(skew))} {direction} the "
        f"service's clock ({when(now)}); the rules allow {_span(rule.max_skew)} either way "
        f"([clock] max_skew_minutes = {rule.max_skew_minutes}); check the device's clock",
        bound="max_skew_minutes", limit=rule.max_skew, at=command.at, reference=now,
    )


def check_lateness(
    command: Command, latest_at: datetime | None, member_since: datetime | None, rule: ClockRule
) -> None:
    """Refuse ``command`` if it is dated before ``member_since`` (given for the commands that
    grant a licence), or earlier than the member's latest decision (``latest_at``) by more than
    ``max_lateness_minutes``."""
    if member_since is not None and command.at < member_since:
        raise LateRequestError(
            f"request {command.request_id}: its time {when(command.at)} is before member {command.member_id} "
            f"subscribed ({when(member_since)})",
            bound="member_since", limit=timedelta(0), at=command.at, reference=member_since,
        )
    if latest_at is not None and command.at < latest_at - rule.max_lateness:
        raise LateRequestError(
            f"request {command.request_id}: its time {when(command.at)} is {_span(latest_at - command.at)} before "
            f"member {command.member_id}'s latest decision ({when(latest_at)}); the rules allow "
            f"{_span(rule.max_lateness)} ([clock] max_lateness_minutes = {rule.max_lateness_minutes})",
            bound="max_lateness_minutes", limit=rule.max_lateness, at=command.at, reference=latest_at,
        )


def _span(delta: timedelta) -> str:
    """A duration as a person reads it: the largest unit that fits."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
