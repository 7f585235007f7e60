"""Sentences of docs/subscriptions.md held to the letter: ``max_attempts`` counts every call of
the handler, a retried parked event arrives as stored like any other, ``lag_seconds`` is read
on the store's clock, and malformed settings are ``InvalidSubscriptionError``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from es_core import EventStore, InvalidSubscriptionError, MemoryStore, NewEvent, SQLiteStore, SubscriptionStoppedError
from es_core.encoding import StoredRecord
from es_core.subscriptions import Delivery, Subscription, SubscriptionAdmin, checkpoints_for


def _stores(tmp_path: Path) -> list[EventStore]:
    return [MemoryStore(), SQLiteStore(tmp_path / "events.db")]


def _fill(store: EventStore, n: int = 6) -> EventStore:
    for i in range(n):
        store.append(f"s{i % 2}", [NewEvent(event_type="T", data={"i": i})])
    return store


def _failing_at(position: int, calls: Counter[int]) -> Callable[[Delivery], None]:
    def handle(d: Delivery) -> None:
        calls[d.position] += 1
        if d.position == position:
            raise ValueError("poison")

    return handle


@pytest.mark.parametrize("attempts", [1, 2, 3])
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_poison_event_is_handed_over_max_attempts_times_in_all(tmp_path: Path, kind: str, attempts: int) -> None:
    store = _fill(dict(zip(["memory", "sqlite"], _stores(tmp_path), strict=True))[kind])
    calls: Counter[int] = Counter()
    sub = Subscription(store, checkpoints_for(store), "m", _failing_at(3, calls), max_attempts=attempts)
    sub.catch_up()
    assert calls[3] == attempts
    assert [p.attempts for p in sub.checkpoints.parked("m")] == [attempts]
    stopping: Counter[int] = Counter()
    stop = Subscription(
        store, checkpoints_for(store), "s", _failing_at(3, stopping), max_attempts=attempts, on_poison="stop"
    )
    with pytest.raises(SubscriptionStoppedError):
        stop.catch_up()
    assert stopping[3] == attempts


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_retried_parked_event_reaches_the_handler_as_stored(tmp_path: Path, kind: str) -> None:
    store = _fill(dict(zip(["memory", "sqlite"], _stores(tmp_path), strict=True))[kind])
    broken = True
    got: list[object] = []

    def handle(d: Delivery) -> None:
        if d.position == 2 and broken:
            raise ValueError("poison")
        got.append(d.record)

    sub = Subscription(store, checkpoints_for(store), "m", handle)
    sub.catch_up()
    broken, got[:] = False, []
    (parked,) = sub.checkpoints.parked("m")
    assert sub.retry_parked() == {parked.event_id: "applied"}
    (record,) = got
    assert isinstance(record, StoredRecord)
    assert record.to_recorded().data == {"i": 1}


def test_lag_seconds_is_read_on_the_stores_clock() -> None:
    now = [datetime(2026, 3, 16, 9, 0, tzinfo=UTC)]  # a simulated clock, far from the real one
    store = _fill(MemoryStore(clock=lambda: now[0]), 3)
    Subscription(store, checkpoints := checkpoints_for(store), "m", lambda d: None, page_size=1).catch_up()
    store.append("s9", [NewEvent(event_type="T", data={})])
    now[0] += timedelta(seconds=30)
    (row,) = SubscriptionAdmin(store, checkpoints).status()
    assert (row.lag_events, row.lag_seconds) == (1, 30.0)


@pytest.mark.parametrize(
    "settings",
    [
        {"poll": 0.01},
        {"poll": (0.01,)},
        {"poll": (0.01, "1")},
        {"poll": (0.1, 0.01)},
        {"lease_seconds": True},
        {"lease_seconds": float("inf")},
        {"poll": (True, 1)},
    ],
)
def test_malformed_settings_are_invalid_subscription_errors(settings: dict[str, object]) -> None:
    store = MemoryStore()
    with pytest.raises(InvalidSubscriptionError):
        Subscription(store, checkpoints_for(store), "m", lambda d: None, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [-1, True, 1.5])
def test_promote_refuses_a_malformed_lag_limit(limit: object) -> None:
    store = _fill(MemoryStore(), 2)
    checkpoints = checkpoints_for(store)
    Subscription(store, checkpoints, "v2", lambda d: None).catch_up()
    with pytest.raises(InvalidSubscriptionError):
        SubscriptionAdmin(store, checkpoints).promote("model", "v2", max_lag_events=limit)  # type: ignore[arg-type]
    assert checkpoints.aliases() == {}  # nothing written
