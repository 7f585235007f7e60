"""Time as a store keeps it: a clock that stamps appends, and microseconds since the Unix epoch
(what every backend stores) converted exactly both ways."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "Clock", "micros", "moment", "utc_now"]

Clock = Callable[[], datetime]
"""What stamps ``recorded_at``: returns a timezone-aware datetime."""


def utc_now() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, as backends store times (exact integer arithmetic)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment(micros: int) -> datetime:
    """The UTC datetime of a stored microsecond count (a few times faster than fromtimestamp)."""
    return EPOCH + timedelta(0, 0, micros)
