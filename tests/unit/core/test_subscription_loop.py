"""The subscription loop's corners: a hole in the feed, a pause that lands between reading a
page and applying it, a reset pending while paused, the memory target's partial page, and
progress reports."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager

import pytest

from es_core import MemoryStore, NewEvent, StreamGap, StreamGapError
from es_core.subscriptions import Delivery, MemoryCheckpoints, Subscription, SubscriptionAdmin
from es_core.subscriptions.checkpoints import Page

from .lossy_store import LossyStore


class _PausesOnce(MemoryCheckpoints):
    """Pauses the subscription just before its page at ``at`` is applied (after it was read)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.paused = threading.Event()

    def page(self, name: str, owner: str, start: int, lease_until: float) -> AbstractContextManager[Page]:
        if start == self.at and not self.paused.is_set():
            self._set(name, status="paused")
            self.paused.set()
        return super().page(name, owner, start, lease_until)


def _store(events: int) -> MemoryStore:
    store = MemoryStore()
    for i in range(events):
        store.append(f"s{i % 3}", [NewEvent(event_type="T", data={"i": i})])
    return store


def test_a_pause_between_reading_and_applying_a_page_is_no_hole_after_resume() -> None:
    store, checkpoints = _store(30), _PausesOnce(at=10)
    seen: list[int] = []
    subscription = Subscription(store, checkpoints, "live", lambda d: seen.append(d.position), page_size=10)
    thread, stop = subscription.run_in_thread()
    try:
        assert checkpoints.paused.wait(10)
        time.sleep(0.05)
        assert seen == list(range(1, 11))  # paused after the first page
        SubscriptionAdmin(store, checkpoints).resume("live")
        deadline = time.monotonic() + 10
        while len(seen) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive(), "the loop died (a false hole after the pause?)"
    finally:
        stop.set()
        thread.join(10)
    assert seen == list(range(1, 31))


def test_a_reset_pending_while_paused_waits_for_resume() -> None:
    store, checkpoints = _store(5), MemoryCheckpoints()
    seen: list[int] = []
    subscription = Subscription(store, checkpoints, "s", lambda d: seen.append(d.position),
                                on_reset=lambda tx, position: seen.clear())
    subscription.catch_up()
    admin = SubscriptionAdmin(store, checkpoints)
    admin.pause("s")
    admin.reset("s", 0)
    assert subscription.catch_up() == 0 and seen == [1, 2, 3, 4, 5]
    admin.resume("s")
    reports: list[tuple[int, int]] = []
    assert subscription.catch_up(progress=lambda done, total: reports.append((done, total))) == 5
    assert seen == [1, 2, 3, 4, 5] and reports[-1] == (5, 5)
    assert checkpoints.get("s").reset_to is None


def test_memory_keeps_what_a_page_applied_before_a_handler_failed() -> None:
    store, checkpoints = _store(6), MemoryCheckpoints()
    seen: list[int] = []

    def handle(d: Delivery) -> None:
        if d.position == 4:
            raise ValueError("poison")
        seen.append(d.position)

    subscription = Subscription(store, checkpoints, "m", handle, page_size=6, max_attempts=2)
    assert subscription.catch_up() == 6
    assert seen == [1, 2, 3, 5, 6]  # nothing before the poison event applied twice
    assert [p.position for p in checkpoints.parked("m")] == [4]
    assert checkpoints.get("m").position == 6



def test_a_hole_in_the_feed_stops_the_subscription_before_the_page_or_reaches_on_gap() -> None:
    store = LossyStore()
    for stream in "abacabca":  # a3 is at position 5
        store.append(stream, [NewEvent(event_type="T", data={})])
    checkpoints, seen = MemoryCheckpoints(), []
    subscription = Subscription(store, checkpoints, "s", lambda d: seen.append(d.position), page_size=3)
    with pytest.raises(StreamGapError) as caught:
        subscription.catch_up()
    assert caught.value.gap == StreamGap("a", 3, 4, 8)
    assert seen == [1, 2, 3, 4, 6, 7] and checkpoints.get("s").position == 7  # the page holding a4 was not applied

    gaps: list[StreamGap] = []
    alarmed = Subscription(store, MemoryCheckpoints(), "s", lambda d: None, on_gap=gaps.append)
    assert alarmed.catch_up() == 7
    assert gaps == [StreamGap("a", 3, 4, 8)]
