"""The port's own contract, on every backend: the repository's two fast paths
(``append_prepared``, ``read_stream_payloads``) keep the same promises as the general methods,
and stored bytes that cannot be decoded are reported the same way whichever backend holds them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest

from es_core import (
    MAX_EVENTS_PER_APPEND,
    ConcurrencyError,
    EventStore,
    Expect,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStreamIdError,
    NewEvent,
    PayloadTooLargeError,
    PreparedEvent,
    StoreCorruptionError,
)

Sid = Callable[..., str]
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def prepared(n: int, event_type: str = "Happened", *, event_id: uuid.UUID | None = None) -> PreparedEvent:
    return PreparedEvent(event_id or uuid.uuid4(), event_type, 1, msgspec.json.encode({"n": n}), b'{"k":"v"}')


# -- append_prepared -------------------------------------------------------------------------


def test_prepared_events_are_stored_like_new_events(store: EventStore, sid: Sid) -> None:
    s = sid()
    first = prepared(1)
    result = store.append_prepared(s, [first, prepared(2)], Expect.NO_STREAM)
    assert (result.first_version, result.last_version, result.duplicate) == (1, 2, False)
    assert result.last_position is not None and result.recorded_at is not None
    records = store.read_stream(s)
    assert [(r.version, r.event_type, r.data, r.metadata) for r in records] == [
        (1, "Happened", {"n": 1}, {"k": "v"}), (2, "Happened", {"n": 2}, {"k": "v"}),
    ]
    assert records[0].event_id == first.event_id
    assert store.append_prepared(s, [prepared(3)], 2).last_version == 3


def test_a_prepared_append_at_a_stale_version_conflicts_and_writes_nothing(store: EventStore, sid: Sid) -> None:
    s = sid()
    store.append_prepared(s, [prepared(1)], Expect.NO_STREAM)
    with pytest.raises(ConcurrencyError) as info:
        store.append_prepared(s, [prepared(2), prepared(3)], 0)
    assert info.value.actual == 1
    assert store.stream_version(s) == 1


def test_a_retried_prepared_append_writes_nothing_twice(store: EventStore, sid: Sid) -> None:
    s = sid()
    batch = [prepared(1), prepared(2)]
    original = store.append_prepared(s, batch, Expect.NO_STREAM)
    retry = store.append_prepared(s, batch, Expect.NO_STREAM)
    assert retry.duplicate and (retry.first_version, retry.last_version) == (1, 2)
    assert retry.last_position == original.last_position
    assert store.stream_version(s) == 2


@pytest.mark.parametrize(
    "bad",
    [
        lambda: prepared(1),  # one event, not a list
        lambda: (prepared(1),),  # a tuple
        lambda: [NewEvent(event_type="Happened", data={})],  # not encoded
        lambda: [prepared(1), "x"],
        lambda: [prepared(1)] * 2,  # the same event id twice
        lambda: [prepared(i) for i in range(MAX_EVENTS_PER_APPEND + 1)],
    ],
)
def test_bad_prepared_batches_are_refused_and_write_nothing(store: EventStore, sid: Sid, bad: Callable[[], object]
                                                           ) -> None:
    s = sid()
    with pytest.raises(InvalidEventError):
        store.append_prepared(s, bad(), Expect.ANY)  # type: ignore[arg-type]
    assert store.stream_version(s) == 0


def test_a_prepared_payload_over_the_limit_is_refused(store: EventStore, sid: Sid) -> None:
    s = sid()
    huge = PreparedEvent(uuid.uuid4(), "Huge", 1, b'{"b":"' + b"x" * store.payload_limit + b'"}', b"{}")
    for batch in ([huge], [prepared(1), huge]):
        with pytest.raises(PayloadTooLargeError):
            store.append_prepared(s, batch, Expect.ANY)
    assert store.stream_version(s) == 0


def test_a_prepared_append_checks_the_stream_id_and_the_expected_version(store: EventStore, sid: Sid) -> None:
    with pytest.raises(InvalidStreamIdError):
        store.append_prepared("", [prepared(1)], Expect.ANY)
    s = sid()
    with pytest.raises(InvalidExpectedVersionError):
        store.append_prepared(s, [prepared(1)], -1)
    assert store.stream_version(s) == 0


# -- read_stream_payloads --------------------------------------------------------------------


@pytest.fixture
def seven(store: EventStore, sid: Sid) -> str:
    s = sid()
    store.append(s, [NewEvent(event_type=f"T{i % 2}", schema_version=1 + i % 3, data={"n": i}) for i in range(1, 8)])
    return s


@pytest.mark.parametrize(
    "bounds", [{}, {"after": 3}, {"upto": 4}, {"after": 2, "upto": 5}, {"after": 7}, {"after": 5, "upto": 5},
               {"upto": 0}, {"upto": 100}],
)
def test_payload_rows_are_the_stream_read_left_encoded(store: EventStore, seven: str, bounds: dict[str, int]) -> None:
    rows = store.read_stream_payloads(seven, **bounds)
    records = store.read_stream(seven, **bounds)
    assert [(v, t, sv, msgspec.json.decode(d)) for v, t, sv, d in rows] == [
        (r.version, r.event_type, r.schema_version, r.data) for r in records
    ]
    assert all(type(d) is bytes for *_, d in rows)


def test_payload_rows_of_a_missing_stream_are_empty(store: EventStore, sid: Sid) -> None:
    assert store.read_stream_payloads(sid("never")) == []


@pytest.mark.parametrize("bad", [{"after": -1}, {"upto": -2}, {"after": "3"}, {"upto": 1.5}])
def test_bad_payload_bounds_are_refused(store: EventStore, seven: str, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        store.read_stream_payloads(seven, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidStreamIdError):
        store.read_stream_payloads("")


# -- stored bytes that cannot be decoded -----------------------------------------------------


def _store_raw(store: EventStore, stream_id: str, data: bytes, metadata: bytes = b"{}") -> None:
    """Write bytes no public method would accept (then a sound event), through the backend's own
    interface, as damage or a foreign writer would leave them."""
    bad = PreparedEvent(uuid.uuid4(), "Damaged", 1, data, metadata)
    good = PreparedEvent(uuid.uuid4(), "Fine", 1, b'{"n":2}', b"{}")
    store._append(stream_id, [bad, good], Expect.NO_STREAM, NOW)


@pytest.mark.parametrize(("data", "metadata"), [(b"{not json", b"{}"), (b'{"n":1}', b"\x00garbage"), (b"", b"{}")])
def test_undecodable_stored_bytes_are_store_corruption_on_every_read(
    store: EventStore, sid: Sid, data: bytes, metadata: bytes
) -> None:
    s = sid()
    start = store.head_position()
    _store_raw(store, s, data, metadata)
    try:
        with pytest.raises(StoreCorruptionError, match=rf"{s}.* v1 "):
            store.read_stream(s)
        with pytest.raises(StoreCorruptionError, match=rf"{s}.* v1 "):
            list(store.read_all(after=start))
        assert [r.data for r in store.read_stream(s, after=1)] == [{"n": 2}]  # the sound event still reads
    finally:
        store.truncate_stream(s, 2)  # a shared keyspace keeps no damage for other readers
    assert [r.version for r in store.read_stream(s)] == [2]
