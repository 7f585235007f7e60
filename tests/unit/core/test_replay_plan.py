"""The repository's replay plan (payloads decoded straight into their classes and handed to the
handlers) builds exactly the state the general path builds (``registry.decode`` of each record,
then ``aggregate.apply``), for histories mixing current and older shapes, and fails the same way."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from es_core import (
    Aggregate,
    DomainEvent,
    EventDecodeError,
    EventRegistry,
    MemoryStore,
    NewEvent,
    Repository,
    UnhandledEventError,
    applies,
)


class Added(DomainEvent, frozen=True):
    event_type = "Added"
    schema_version = 2
    amount: int
    note: str


class Removed(DomainEvent, frozen=True):
    event_type = "Removed"
    amount: int


class Noted(DomainEvent, frozen=True):  # registered, but no handler
    event_type = "Noted"
    text: str


def registry() -> EventRegistry:
    r = EventRegistry(Added, Removed, Noted)
    r.add_upcaster("Added", 1, lambda d: {**d, "note": "from v1"})
    return r


class Tally(Aggregate["Tally.State"]):
    aggregate_type = "tally"

    class State(msgspec.Struct):
        total: int = 0
        notes: list[str] = msgspec.field(default_factory=list)

    @applies(Added)
    def _added(self, e: Added) -> None:
        self.state.total += e.amount
        self.state.notes.append(e.note)

    @applies(Removed)
    def _removed(self, e: Removed) -> None:
        self.state.total -= e.amount


class CountingTally(Tally):
    """Overrides ``apply``: it must see every event, so it gets no plan."""

    seen = 0

    def apply(self, event: DomainEvent) -> None:
        type(self).seen += 1
        super().apply(event)


stored_events = st.lists(
    st.one_of(
        st.builds(lambda n, note: ("Added", 2, {"amount": n, "note": note}), st.integers(0, 99), st.text(max_size=3)),
        st.builds(lambda n: ("Added", 1, {"amount": n}), st.integers(0, 99)),
        st.builds(lambda n: ("Removed", 1, {"amount": n}), st.integers(0, 99)),
    ),
    max_size=30,
)


def _store(history: list[tuple[str, int, dict[str, Any]]]) -> MemoryStore:
    store = MemoryStore()
    if history:
        store.append("tally-t", [NewEvent(event_type=t, schema_version=v, data=d) for t, v, d in history])
    return store


def _slow_replay(store: MemoryStore, reg: EventRegistry, cls: type[Tally]) -> Tally:
    aggregate = cls("t")
    for record in store.read_stream("tally-t"):
        for event in reg.decode(record):
            aggregate.apply(event)
        aggregate.version = record.version
    return aggregate


@settings(max_examples=60)
@given(stored_events)
def test_the_plan_builds_the_state_the_general_path_builds(history: list[tuple[str, int, dict[str, Any]]]) -> None:
    store, reg = _store(history), registry()
    loaded = Repository(store, reg, Tally).load("t")
    slow = _slow_replay(store, reg, Tally)
    assert (loaded.version, loaded.state) == (slow.version, slow.state)
    assert loaded.replayed_on_load == len(history)


def test_an_aggregate_that_overrides_apply_sees_every_event() -> None:
    store, reg = _store([("Added", 2, {"amount": 1, "note": "a"}), ("Removed", 1, {"amount": 1})]), registry()
    CountingTally.seen = 0
    loaded = Repository(store, reg, CountingTally).load("t")
    assert CountingTally.seen == 2 and loaded.state.total == 0


def test_a_payload_that_does_not_fit_fails_as_decode_json_says() -> None:
    store, reg = _store([("Added", 2, {"amount": 1, "note": "a"}), ("Added", 2, {"amount": "lots"})]), registry()
    with pytest.raises(EventDecodeError) as planned:
        Repository(store, reg, Tally).load("t")
    with pytest.raises(EventDecodeError) as general:
        reg.decode_json("Added", 2, b'{"amount":"lots"}', stream_id="tally-t", version=2)
    assert str(planned.value) == str(general.value)


def test_an_event_without_a_handler_is_refused_as_apply_refuses_it() -> None:
    store, reg = _store([("Noted", 1, {"text": "hi"})]), registry()
    with pytest.raises(UnhandledEventError):
        Repository(store, reg, Tally).load("t")


def test_a_class_registered_later_is_planned() -> None:
    class Reset(DomainEvent, frozen=True):
        event_type = "Reset"

    class Resettable(Tally):
        @applies(Reset)
        def _reset(self, e: Reset) -> None:
            self.state.total = 0

    reg = registry()
    store = _store([("Added", 2, {"amount": 5, "note": ""})])
    repository = Repository(store, reg, Resettable)
    assert repository.load("t").state.total == 5
    reg.register(Reset)
    store.append("tally-t", [NewEvent(event_type="Reset", data={})])
    assert repository.load("t").state.total == 0
