"""The subscription contract, on every store: memory, SQLite and a real Cassandra node.

Exactly once on memory and SQLite (the position is committed with the effect), at least once on
Cassandra (nothing repeats unless a page is interrupted); never a skipped event."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from es_core import (
    EventStore,
    InvalidPositionError,
    InvalidSubscriptionError,
    NewEvent,
    SubscriptionBusyError,
    SubscriptionError,
    SubscriptionRunningError,
    SubscriptionStoppedError,
    UnknownSubscriptionError,
)
from es_core.subscriptions import (
    Checkpoints,
    MemoryCheckpoints,
    SQLiteCheckpoints,
    Subscription,
    SubscriptionAdmin,
    checkpoints_for,
)

from .conftest import StoreFactory
from .subscription_models import CassandraEffects, EffectModel, Key, MemoryEffects, SQLiteEffects


@dataclass
class Target:
    store: EventStore
    checkpoints: Checkpoints
    new_model: Callable[[str], EffectModel]
    name: Callable[[str], str]

    def subscription(self, model: EffectModel, **options: object) -> Subscription:
        return Subscription(self.store, self.checkpoints, model.name, model.apply, on_reset=model.reset,
                            **options)  # type: ignore[arg-type]

    @property
    def admin(self) -> SubscriptionAdmin:
        return SubscriptionAdmin(self.store, self.checkpoints)


@pytest.fixture
def target(backend: str, store: EventStore, sid: Callable[[str], str]) -> Iterator[Target]:
    checkpoints = checkpoints_for(store)
    if backend == "memory":
        def new_model(name: str) -> EffectModel:
            return MemoryEffects(checkpoints, name)
    elif backend == "sqlite":
        def new_model(name: str) -> EffectModel:
            return SQLiteEffects(checkpoints, name)
    else:
        def new_model(name: str) -> EffectModel:
            return CassandraEffects(checkpoints, name, store)
    yield Target(store, checkpoints, new_model, sid)
    checkpoints.close()


def _append(store: EventStore, streams: str, tag: str) -> list[Key]:
    """One event per letter, on streams named by the letters (interleaved versions)."""
    keys = []
    for letter in streams:
        result = store.append(f"{letter}-{tag}", [NewEvent(event_type="Thing", data={"letter": letter})])
        keys.append((f"{letter}-{tag}", result.last_version))
    return keys


def _once(keys: list[Key]) -> Counter[Key]:
    return Counter({k: 1 for k in keys})


def _mine(model: EffectModel, keys: list[Key]) -> Counter[Key]:
    wanted = set(keys)
    return Counter({k: n for k, n in model.counts().items() if k in wanted})


def test_catch_up_applies_every_event_once_and_resumes_from_the_stored_position(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "abcabca", tag)
    model = target.new_model(target.name("sub"))
    first = target.subscription(model)
    assert first.catch_up() >= len(keys)
    assert _mine(model, keys) == _once(keys)
    stored = target.checkpoints.get(model.name).position
    mine = [r.position for r in target.store.read_all() if (r.stream_id, r.version) in set(keys)]
    assert stored == first.position >= max(mine)

    more = _append(target.store, "bcd", tag)
    again = target.subscription(model)  # a new copy starts from the stored position
    assert again.position == stored
    again.catch_up()
    assert _mine(model, keys + more) == _once(keys + more)
    assert target.checkpoints.get(model.name).owner is None  # the lease is released


def test_a_live_subscription_follows_appends_without_a_second_code_path(target: Target) -> None:
    tag = target.name("t")
    model = target.new_model(target.name("live"))
    # a lease far longer than a page takes even on a crowded machine: this test is about
    # following, and a lease that ran out between two slow pages would show the copy as idle
    sub = target.subscription(model, poll=(0.001, 0.02), lease_seconds=300)
    thread, stop = sub.run_in_thread()
    try:
        keys = _append(target.store, "abab", tag)
        deadline = time.monotonic() + 120
        while _mine(model, keys) != _once(keys) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _mine(model, keys) == _once(keys)  # followed while running, before any stop
        status = target.admin.status([model.name])[0]
        assert status.running and status.owner == sub.owner
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert _mine(model, keys) == _once(keys)
    assert not target.admin.status([model.name])[0].running


def test_a_poison_event_is_retried_parked_and_applied_once_after_a_fix(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "abcab", tag)
    poison = next(r for r in target.store.read_all() if (r.stream_id, r.version) == keys[2])
    model = target.new_model(target.name("poison"))
    model.fail_on.add(poison.event_id)
    sub = target.subscription(model, max_attempts=3)
    sub.catch_up()
    assert _mine(model, keys) == _once([k for k in keys if k != keys[2]])  # the others went on
    parked = target.admin.parked(model.name)
    assert [(p.event_id, p.attempts) for p in parked] == [(poison.event_id, 3)]
    assert "RuntimeError: cannot handle" in parked[0].error
    assert target.admin.status([model.name])[0].parked == 1

    model.fail_on.clear()  # the fix
    assert sub.retry_parked(poison.event_id) == {poison.event_id: "applied"}
    assert _mine(model, keys) == _once(keys)
    assert target.admin.parked(model.name) == []
    assert sub.retry_parked() == {}


def test_policy_stop_halts_before_the_poison_event_until_resumed_or_skipped(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "abcd", tag)
    records = {(r.stream_id, r.version): r for r in target.store.read_all()}
    model = target.new_model(target.name("stop"))
    model.fail_on.add(records[keys[1]].event_id)
    sub = target.subscription(model, max_attempts=2, on_poison="stop")
    with pytest.raises(SubscriptionStoppedError):
        sub.catch_up()
    assert _mine(model, keys) == _once(keys[:1])
    state = target.checkpoints.get(model.name)
    assert state.status == "stopped" and state.position == records[keys[0]].position
    with pytest.raises(SubscriptionStoppedError):
        sub.catch_up()  # stays stopped until an operator acts

    skipped = target.admin.skip(model.name, records[keys[1]].event_id, "bad payload from a rolled-back deploy")
    target.admin.resume(model.name)
    sub.catch_up()
    assert _mine(model, keys) == _once([keys[0], *keys[2:]])
    assert target.admin.skipped(model.name) == [skipped]


def test_a_second_copy_cannot_advance_while_the_first_runs(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "ab", tag)
    model = target.new_model(target.name("two"))
    # a lease far longer than the test, so a slow, loaded machine cannot let it run out
    first, second = target.subscription(model, lease_seconds=600), target.subscription(model)
    thread, stop = first.run_in_thread()
    try:
        deadline = time.monotonic() + 120
        while not target.admin.status([model.name])[0].running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert target.admin.status([model.name])[0].owner == first.owner
        with pytest.raises(SubscriptionBusyError):
            second.catch_up()
        with pytest.raises(SubscriptionRunningError):
            target.admin.reset(model.name, 0)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    second.catch_up()  # the lease is free again
    assert _mine(model, keys) == _once(keys)


def test_reset_to_zero_rebuilds_the_same_model_through_the_reset_hook(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "abcab", tag)
    model = target.new_model(target.name("reset"))
    sub = target.subscription(model)
    sub.catch_up()
    before = _mine(model, keys)
    target.admin.reset(model.name, 0)
    assert target.admin.status([model.name])[0].reset_to == 0
    sub.catch_up()
    assert _mine(model, keys) == before == _once(keys)
    assert target.checkpoints.get(model.name).reset_to is None

    middle = next(r for r in target.store.read_all() if (r.stream_id, r.version) == keys[2]).position
    target.admin.reset(model.name, middle)
    sub.catch_up()
    assert _mine(model, keys) == _once(keys)


def test_pause_holds_and_resume_goes_on(target: Target) -> None:
    tag = target.name("t")
    model = target.new_model(target.name("pause"))
    sub = target.subscription(model)
    target.admin.pause(model.name)
    keys = _append(target.store, "ab", tag)
    assert sub.catch_up() == 0
    assert _mine(model, keys) == Counter()
    assert target.admin.status([model.name])[0].status == "paused"
    target.admin.resume(model.name)
    sub.catch_up()
    assert _mine(model, keys) == _once(keys)


def test_status_reports_position_head_and_lag(target: Target) -> None:
    tag = target.name("t")
    model = target.new_model(target.name("lag"))
    sub = target.subscription(model)
    sub.catch_up()
    _append(target.store, "abc", tag)
    status = target.admin.status([model.name])[0]
    assert status.head == target.store.head_position()
    assert status.position < status.head
    assert status.lag_events >= 3 and status.lag_seconds >= 0
    sub.catch_up()
    status = target.admin.status([model.name])[0]
    assert (status.lag_events, status.lag_seconds) == (0, 0.0)
    assert status.as_dict()["name"] == model.name


def test_bad_input_is_refused_and_writes_nothing(target: Target) -> None:
    model = target.new_model(target.name("bad"))
    names_before = target.checkpoints.names()
    with pytest.raises(InvalidSubscriptionError):
        Subscription(target.store, target.checkpoints, model.name, "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidSubscriptionError):
        Subscription(target.store, target.checkpoints, "", model.apply)
    with pytest.raises(InvalidSubscriptionError):
        Subscription(target.store, target.checkpoints, model.name, model.apply, on_poison="ignore")
    with pytest.raises(InvalidSubscriptionError):
        Subscription(target.store, target.checkpoints, model.name, model.apply, page_size=0)
    assert target.checkpoints.names() == names_before
    with pytest.raises(UnknownSubscriptionError):
        target.admin.reset(model.name, 0)
    with pytest.raises(UnknownSubscriptionError):
        target.admin.pause(model.name)
    with pytest.raises(UnknownSubscriptionError):
        target.admin.status([model.name])

    target.subscription(model)
    state = target.checkpoints.get(model.name)
    with pytest.raises(InvalidPositionError):
        target.admin.reset(model.name, -1)
    with pytest.raises(InvalidPositionError):
        target.admin.reset(model.name, target.store.head_position() + 1)
    with pytest.raises(InvalidPositionError):
        target.admin.reset(model.name, "0")  # type: ignore[arg-type]
    with pytest.raises(InvalidSubscriptionError):
        target.admin.skip(model.name, "not-an-id", "why")
    with pytest.raises(InvalidSubscriptionError):
        target.admin.skip(model.name, "6f1f0a52-3a51-4c49-9a4b-2f4f3b0d1e77", "  ")
    assert target.checkpoints.get(model.name) == state
    assert target.admin.skipped(model.name) == []


def test_blue_green_promotion_waits_for_the_new_model_to_catch_up(target: Target) -> None:
    tag = target.name("t")
    keys = _append(target.store, "abc", tag)
    blue, green = target.new_model(target.name("blue")), target.new_model(target.name("green"))
    alias = target.name("model")
    target.subscription(blue).catch_up()
    target.admin.promote(alias, blue.name)
    green_sub = target.subscription(green)
    with pytest.raises(SubscriptionError):
        target.admin.promote(alias, green.name)  # not built yet: readers keep blue
    assert target.admin.resolve(alias) == blue.name
    green_sub.catch_up()
    target.admin.promote(alias, green.name)
    assert target.admin.resolve(alias) == green.name
    assert _mine(green, keys) == _mine(blue, keys) == _once(keys)


def test_checkpoints_survive_reopening_the_store(backend: str, reopen: StoreFactory, tmp_path: Path,
                                                sid: Callable[[str], str]) -> None:
    if backend == "memory":
        pytest.skip("a memory store and its checkpoints end with the process")
    store = reopen()
    tag, name = sid("t"), sid("durable")
    keys = _append(store, "abc", tag)
    checkpoints = checkpoints_for(store)
    model: EffectModel = (SQLiteEffects(checkpoints, name) if backend == "sqlite"
                          else CassandraEffects(checkpoints, name, store))
    Subscription(store, checkpoints, name, model.apply).catch_up()
    position = checkpoints.get(name).position
    checkpoints.close()

    again = reopen()
    checkpoints = checkpoints_for(again)
    assert checkpoints.get(name).position == position
    assert Subscription(again, checkpoints, name, model.apply).catch_up() == 0 or backend == "cassandra"
    model.checkpoints = checkpoints
    assert _mine(model, keys) == _once(keys)
    checkpoints.close()


def test_sqlite_checkpoints_in_a_separate_file(tmp_path: Path) -> None:
    from es_core import open_store

    store = open_store(f"sqlite:///{tmp_path}/events.db")
    checkpoints = SQLiteCheckpoints(tmp_path / "read-models.db")
    model = SQLiteEffects(checkpoints, "separate")
    keys = _append(store, "abcab", "x")
    Subscription(store, checkpoints, "separate", model.apply).catch_up()
    assert _mine(model, keys) == _once(keys)
    assert checkpoints.get("separate").position == store.head_position()
    checkpoints.close()
    store.close()


def test_memory_checkpoints_share_one_lock_with_readers() -> None:
    from es_core import open_store

    store = open_store("memory://")
    checkpoints = MemoryCheckpoints()
    model = MemoryEffects(checkpoints, "locked")
    keys = _append(store, "ab" * 50, "x")
    seen: list[tuple[int, int]] = []

    def reader() -> None:
        for _ in range(200):
            with checkpoints.lock:  # the model and the position, as of one page
                seen.append((sum(model.effects.values()), checkpoints.get("locked").position))

    sub = Subscription(store, checkpoints, "locked", model.apply, page_size=7)
    thread = threading.Thread(target=reader)
    thread.start()
    sub.catch_up()
    thread.join()
    assert all(effects == position for effects, position in seen)  # one event per position here
    assert _mine(model, keys) == _once(keys)
