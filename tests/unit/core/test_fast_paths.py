"""Every fast path in validation, encoding and decoding gives exactly what its slow path gives:
the same value, or the same error type."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from es_core import (
    InvalidEventError,
    MemoryStore,
    PreparedEvent,
    RecordedEvent,
    StoreCorruptionError,
    StoredEvent,
)
from es_core.clock import micros
from es_core.encoding import checked_json, decode_stored, decode_stored_page, plain_json
from es_core.validation import Validation, check_event_type, check_expected_version, check_stream_id


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What a call did: its value, or the type of error it raised."""
    try:
        return "value", fn()
    except Exception as exc:  # the comparison is the point: any error type counts
        return "error", type(exc)


class Name(str):
    """A str subclass: never cached (it could compare equal to a name it is not)."""


names = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="abcXYZ019_.:-\x00\x1f ", max_size=140),
    st.sampled_from(["Happened", "a" * 128, "a" * 129, "1x", "", "x y", "ünï"]),
    st.builds(Name, st.text(max_size=10)),
    st.integers(),
    st.none(),
)


@given(st.lists(names, min_size=1, max_size=6))
def test_remembered_stream_ids_are_checked_exactly_like_fresh_ones(values: list[object]) -> None:
    valid = Validation()
    for value in values * 2:  # the second time round, accepted ids come from the cache
        assert outcome(lambda v=value: valid.stream_id(v)) == outcome(lambda v=value: check_stream_id(v))


@given(st.lists(names, min_size=1, max_size=6))
def test_remembered_event_types_are_checked_exactly_like_fresh_ones(values: list[object]) -> None:
    valid = Validation()
    for value in values * 2:
        assert outcome(lambda v=value: valid.event_type(v)) == outcome(lambda v=value: check_event_type(v))


def test_a_full_cache_starts_again_and_stays_correct() -> None:
    valid = Validation()
    for i in range(Validation.MAX_REMEMBERED_STREAMS + 10):
        valid.stream_id(f"s{i}")
    assert len(valid._stream_ids) <= Validation.MAX_REMEMBERED_STREAMS
    with pytest.raises(InvalidEventError):
        valid.event_type("not valid")
    assert valid.stream_id("s1") == "s1"


def test_validation_caches_belong_to_their_store() -> None:
    first, second = MemoryStore(), MemoryStore()
    first.append("seen-by-first", [])
    assert "seen-by-first" in first._valid._stream_ids
    assert not second._valid._stream_ids  # a store starts with nothing remembered


def _slow_expected_version(expected: object) -> object:
    """The general branches of check_expected_version, without its first type check."""
    from es_core import Expect, InvalidExpectedVersionError

    if isinstance(expected, Expect):
        return expected
    if isinstance(expected, int) and not isinstance(expected, bool) and expected >= 0:
        return expected
    raise InvalidExpectedVersionError(str(expected))


class Big(int):
    pass


@given(st.one_of(st.integers(), st.booleans(), st.builds(Big, st.integers()), st.floats(), st.text(max_size=3),
                 st.none(), st.sampled_from(["any"])))
def test_the_exact_int_shortcut_for_expected_versions_agrees_with_the_general_check(value: object) -> None:
    assert outcome(lambda: check_expected_version(value)) == outcome(lambda: _slow_expected_version(value))


def _event(size: int, event_id: uuid.UUID | None = None) -> PreparedEvent:
    return PreparedEvent(event_id or uuid.uuid4(), "E", 1, b"x" * size, b"{}")


@pytest.mark.parametrize("size", [0, 98, 99, 100, 5000])
@pytest.mark.parametrize("kind", ["prepared", "subclass"])
def test_the_one_event_shortcut_for_prepared_batches_agrees_with_the_batch_checks(size: int, kind: str) -> None:
    class Sub(PreparedEvent):  # not a PreparedEvent exactly: the shortcut must not take it
        pass

    event = _event(size) if kind == "prepared" else Sub(uuid.uuid4(), "E", 1, b"x" * size, b"{}")
    valid = Validation(payload_limit=100)
    shortcut = outcome(lambda: valid.prepared([event]))
    general = outcome(lambda: valid.prepared([event, _event(0)]))  # two events skip the shortcut
    assert shortcut[0] == general[0]
    if shortcut[0] == "error":
        assert shortcut[1] is general[1]


json_leaves = st.one_of(
    st.text(max_size=5), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True),
    st.datetimes(timezones=st.just(UTC)), st.datetimes(), st.uuids(), st.just(object()),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5))
def test_the_plain_json_shortcut_accepts_only_what_the_full_check_accepts(value: dict[str, Any]) -> None:
    if plain_json(value):
        assert outcome(lambda: checked_json(value, "data")) == ("value", value)


def _stored(version: int, data: bytes = b'{"n":1}', metadata: bytes = b"{}",
            event_id: bytes | None = None, at: object = None) -> StoredEvent:
    return StoredEvent("s", version, version, event_id or uuid.uuid4().bytes, "E", 1, data, metadata,
                       micros(datetime(2026, 1, 1, tzinfo=UTC)) + version if at is None else at)  # type: ignore[arg-type]


@given(st.lists(st.dictionaries(st.text(max_size=4), st.integers(), max_size=3), max_size=8))
def test_a_page_decodes_to_what_each_event_decodes_to(datas: list[dict[str, int]]) -> None:
    page = [_stored(i, msgspec.json.encode(d)) for i, d in enumerate(datas, start=1)]
    decoded = decode_stored_page(page)
    assert decoded == [decode_stored(s) for s in page]
    assert [r.data for r in decoded] == datas
    assert all(type(r) is RecordedEvent and r.recorded_at.tzinfo is not None for r in decoded)


def test_a_stored_event_decodes_to_the_record_it_holds() -> None:
    event_id = uuid.uuid4()
    at = datetime(2026, 3, 1, 12, 30, 1, 5, tzinfo=UTC)
    stored = StoredEvent("s-1", 3, 17, event_id.bytes, "Happened", 2, b'{"a":[1,"x"]}', b'{"m":true}', micros(at))
    assert decode_stored(stored) == RecordedEvent(
        stream_id="s-1", version=3, position=17, event_id=event_id, event_type="Happened", schema_version=2,
        data={"a": [1, "x"]}, metadata={"m": True}, recorded_at=at,
    )


@pytest.mark.parametrize(
    "damage",
    [
        {"data": b"{not json"},
        {"metadata": b"\x00"},
        {"data": b""},
        {"event_id": b"\x01\x02"},
        {"at": "yesterday"},
        {"data": None},
    ],
)
def test_a_page_with_an_unreadable_event_names_that_event(damage: dict[str, Any]) -> None:
    page = [_stored(1), _stored(2, **damage), _stored(3)]
    with pytest.raises(StoreCorruptionError, match=r"'s' v2 \(position 2\) is unreadable"):
        decode_stored_page(page)
    with pytest.raises(StoreCorruptionError, match=r"'s' v2"):
        decode_stored(page[1])
