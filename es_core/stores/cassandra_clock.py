"""Clocks of the Cassandra feed: the cluster's, and a store handle's own clock held near it.

Clocks decide only how positions are spread (speed, lag, which slot an append falls in), never
whether an event can be missed (see ``cassandra_feed``). They are bounded anyway, so one host
with a wrong clock cannot drag everyone's positions far ahead or leave them far behind:

* **the cluster's clock** is a coordinator's ``now()`` (milliseconds), read when first needed
  and again every ``REFRESH_S``, carried forward by this process's monotonic clock;
* **a handle's clock** is the store's ``clock`` argument (the one that stamps ``recorded_at``),
  held within ``clock_skew_ms`` of the cluster's clock: a clock further ahead or behind is
  replaced by the nearer bound, and ``feed_status()`` reports the offset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .base import micros, utc_now

REFRESH_S = 60.0


class ClusterClock:
    """Microseconds of the cluster's clock, as its coordinators tell it (thread-safe)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._offset_ns: int | None = None  # cluster time in ns minus monotonic ns
        self._measured = 0.0

    def now_us(self) -> int:
        offset = self._offset_ns
        if offset is None or time.monotonic() - self._measured > REFRESH_S:
            offset = self.measure()
        return (time.monotonic_ns() + offset) // 1000

    def measure(self) -> int:
        """Ask a coordinator for its time; the answer is placed midway through the round trip."""
        before = time.monotonic_ns()
        row = self._session.execute("SELECT toUnixTimestamp(now()) FROM system.local").one()
        after = time.monotonic_ns()
        offset = int(row[0]) * 1_000_000 + 500_000 - (before + after) // 2  # +0.5 ms: the reply is truncated
        with self._lock:
            self._offset_ns, self._measured = offset, time.monotonic()
        return offset


class BoundedClock:
    """A store handle's clock in microseconds, held within ``skew_us`` of the cluster's."""

    def __init__(self, clock: Callable[[], datetime], cluster: ClusterClock, skew_us: int) -> None:
        self._clock = clock
        self.cluster = cluster
        self.skew_us = skew_us
        self.offset_us = 0  # the handle's clock minus the cluster's, when last read

    def own_us(self) -> int:
        if self._clock is utc_now:
            return time.time_ns() // 1000
        return micros(self._clock())

    def now_us(self) -> int:
        own, cluster = self.own_us(), self.cluster.now_us()
        self.offset_us = own - cluster
        return min(max(own, cluster - self.skew_us), cluster + self.skew_us)

    @property
    def out_of_bounds(self) -> bool:
        return abs(self.offset_us) > self.skew_us
