"""watch_subscription samples a live subscription until it has caught up; lag_chart draws it."""

from __future__ import annotations

import threading

import workbench as wb
from es_core import MemoryStore, NewEvent
from es_core.subscriptions import MemoryCheckpoints, Subscription, SubscriptionAdmin


def test_watching_a_subscription_follow_a_writer() -> None:
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    seen: list[int] = []
    subscription = Subscription(store, checkpoints, "seen", lambda d: seen.append(d.position))
    thread, stop = subscription.run_in_thread()

    def write() -> None:
        for i in range(200):
            store.append(f"s{i % 5}", [NewEvent(event_type="T", data={"i": i})])

    writer = threading.Thread(target=write)
    writer.start()
    try:
        samples = wb.watch_subscription(SubscriptionAdmin(store, checkpoints), "seen",
                                        until=lambda: not writer.is_alive(), every=0.001, timeout=60)
    finally:
        writer.join()
        stop.set()
        thread.join()
    assert list(samples.columns) == ["seconds", "position", "head", "lag_events"]
    last = samples.iloc[-1]
    assert last["position"] == last["head"] == 200 and last["lag_events"] == 0
    assert samples["position"].is_monotonic_increasing and (samples["position"] <= samples["head"]).all()
    assert seen == list(range(1, 201))

    figure = wb.lag_chart(samples)
    assert [trace.name for trace in figure.data] == ["head (last event written)", "subscription position",
                                                     "lag (events)"]
    assert wb.trace_points(figure) == 3 * len(samples)
