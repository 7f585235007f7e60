"""Schema versioning: upcaster chains, their start-up validation, and tolerant reading."""

from __future__ import annotations

import enum
import os
import pickle
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from es_core import (
    DomainEvent,
    EventDecodeError,
    EventRegistry,
    InvalidEventError,
    RecordedEvent,
    UnknownEventTypeError,
    UnsupportedSchemaVersionError,
    UpcasterChainError,
)
from es_core.ids import event_id_from, time_ordered_id, uuid_from_bytes
from es_core.validation import Validation


class Renewed(DomainEvent, frozen=True):
    event_type = "LicenseRenewed"
    schema_version = 3
    license_id: str
    days: int
    counts_as_download: bool


class Acquired(DomainEvent, frozen=True):
    event_type = "LicenseAcquired"
    schema_version = 1
    license_id: str
    device: str


class Released(DomainEvent, frozen=True):
    event_type = "LicenseReleased"
    license_id: str


def record(event_type: str, version: int, data: dict) -> RecordedEvent:  # type: ignore[type-arg]
    return RecordedEvent(
        stream_id="s", version=1, position=1, event_id=uuid.uuid4(), event_type=event_type,
        schema_version=version, data=data, metadata={}, recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def full_registry() -> EventRegistry:
    r = EventRegistry(Renewed, Acquired, Released)
    r.add_upcaster("LicenseRenewed", 1, lambda d: {**d, "counts_as_download": True})  # added field, default
    r.add_upcaster(  # renamed field
        "LicenseRenewed", 2, lambda d: {"license_id": d["licence"], **{k: v for k, v in d.items() if k != "licence"}}
    )
    r.rename_type("LicenceGranted", 1, "LicenseAcquired", 1)  # renamed event type
    r.split(
        "LicenseSwapped", 1,
        lambda d: [("LicenseReleased", 1, {"license_id": d["old"]}),
                   ("LicenseAcquired", 1, {"license_id": d["new"], "device": d["device"]})],
        into=[("LicenseReleased", 1), ("LicenseAcquired", 1)],
    )
    r.retire("DeviceHeartbeat", upto_version=2)
    r.validate()
    return r


def test_added_and_renamed_fields_are_upcast_in_a_chain() -> None:
    r = full_registry()
    (event,) = r.decode(record("LicenseRenewed", 1, {"licence": "L1", "days": 7}))
    assert event == Renewed(license_id="L1", days=7, counts_as_download=True)
    (event,) = r.decode(record("LicenseRenewed", 2, {"licence": "L1", "days": 2, "counts_as_download": False}))
    assert event == Renewed(license_id="L1", days=2, counts_as_download=False)
    (event,) = r.decode(record("LicenseRenewed", 3, {"license_id": "L1", "days": 1, "counts_as_download": True}))
    assert event.days == 1


def test_renamed_types_split_events_and_retired_types() -> None:
    r = full_registry()
    assert r.decode(record("LicenceGranted", 1, {"license_id": "L", "device": "d"})) == [
        Acquired(license_id="L", device="d")
    ]
    assert r.decode(record("LicenseSwapped", 1, {"old": "A", "new": "B", "device": "d"})) == [
        Released(license_id="A"), Acquired(license_id="B", device="d")
    ]
    assert r.decode(record("DeviceHeartbeat", 2, {"x": 1})) == []
    with pytest.raises(UnknownEventTypeError):
        r.decode(record("DeviceHeartbeat", 3, {}))  # newer than the retirement


def test_trace_names_every_step_with_the_data_it_read() -> None:
    r = full_registry()
    steps = r.trace("LicenseRenewed", 1, {"licence": "L1", "days": 7})
    assert [(s.kind, s.source) for s in steps] == [("upcast", ("LicenseRenewed", 1)), ("upcast", ("LicenseRenewed", 2))]
    assert steps[0].data == {"licence": "L1", "days": 7}
    assert steps[1].data == {"licence": "L1", "days": 7, "counts_as_download": True}
    assert steps[-1].results == (("LicenseRenewed", 3, {"license_id": "L1", "days": 7, "counts_as_download": True}),)
    (split,) = r.trace("LicenseSwapped", 1, {"old": "A", "new": "B", "device": "d"})
    assert split.kind == "split" and [t for t, _, _ in split.results] == ["LicenseReleased", "LicenseAcquired"]
    assert [(s.kind, s.results) for s in r.trace("DeviceHeartbeat", 1, {})] == [("retired", ())]
    assert r.trace("LicenseAcquired", 1, {"license_id": "L", "device": "d"}) == [], "a current shape takes no step"
    with pytest.raises(UnknownEventTypeError):
        r.trace("Nope", 1, {})


def test_upcasters_do_not_mutate_what_was_read() -> None:
    r = EventRegistry(Renewed)
    r.add_upcaster("LicenseRenewed", 1, lambda d: d.update(counts_as_download=False) or d)  # careless
    r.add_upcaster("LicenseRenewed", 2, lambda d: {**d, "license_id": d.pop("licence")})
    stored = {"licence": "L", "days": 1}
    rec = record("LicenseRenewed", 1, stored)
    assert r.decode(rec)[0].license_id == "L"
    assert rec.data == {"licence": "L", "days": 1}


def test_encode_round_trips_through_decode() -> None:
    r = full_registry()
    new = r.encode(Renewed(license_id="L", days=3, counts_as_download=False), metadata={"command_id": "c"})
    assert (new.event_type, new.schema_version, new.metadata) == ("LicenseRenewed", 3, {"command_id": "c"})
    assert r.decode(record(new.event_type, new.schema_version, dict(new.data))) == [
        Renewed(license_id="L", days=3, counts_as_download=False)
    ]


def test_unknown_types_and_newer_versions_raise_by_default() -> None:
    r = full_registry()
    with pytest.raises(UnknownEventTypeError) as unknown:
        r.decode(record("Mystery", 1, {}))
    assert unknown.value.event_type == "Mystery"
    with pytest.raises(UnsupportedSchemaVersionError) as newer:
        r.decode(record("LicenseRenewed", 4, {}))
    assert (newer.value.schema_version, newer.value.known) == (4, 3)


def test_tolerant_mode_skips_and_counts() -> None:
    r = full_registry()
    r.tolerant = True
    records = [
        record("Mystery", 1, {}),
        record("LicenseRenewed", 4, {}),
        record("LicenseRenewed", 4, {}),
        record("LicenseReleased", 1, {"license_id": "L"}),
    ]
    assert [d.event for d in r.decode_all(records)] == [Released(license_id="L")]
    assert r.skipped == {("Mystery", 1): 1, ("LicenseRenewed", 4): 2}


def test_a_payload_that_does_not_fit_is_a_decode_error_naming_the_stored_event() -> None:
    r = full_registry()
    bad = record("LicenseReleased", 1, {"license_id": 42})
    with pytest.raises(EventDecodeError, match=f"{bad.event_id} .*stream 's' v1\\) does not fit LicenseReleased"):
        r.decode(bad)
    with pytest.raises(EventDecodeError):
        r.decode(record("LicenseReleased", 1, {}))
    with pytest.raises(EventDecodeError, match="stream 'm' v7\\) does not fit LicenseReleased"):
        r.decode_json("LicenseReleased", 1, b'{"license_id": 42}', stream_id="m", version=7)
    # an upcaster meeting a payload it cannot read: a decode error naming the step, not a KeyError
    with pytest.raises(EventDecodeError, match=r"upcast step from LicenseRenewed v2 failed .*KeyError"):
        r.decode_json("LicenseRenewed", 1, b'{"license_id": "L"}', stream_id="m", version=8)
    # an older shape that still does not fit once upcast: named the same way
    with pytest.raises(EventDecodeError, match="LicenseRenewed v1, stream 'm' v8\\) does not fit LicenseRenewed"):
        r.decode_json("LicenseRenewed", 1, b'{"licence": 5}', stream_id="m", version=8)


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda r: r.add_upcaster("LicenseRenewed", 1, dict), "gap: LicenseRenewed is at v3 but has no step from v2"),
        (lambda r: r.add_upcaster("Nowhere", 1, dict), "leads to Nowhere v2, which is nowhere"),
        (lambda r: r.rename_type("Old", 1, "Missing", 1), "leads to Missing v1"),
        (lambda r: r.add_upcaster("LicenseAcquired", 1, dict), "starts at or after its current version"),
        (lambda r: (r.rename_type("A", 1, "B", 1), r.rename_type("B", 1, "A", 1)), "nowhere"),
        (lambda r: r.retire("LicenseAcquired", 1), "both registered and retired"),
    ],
    ids=["gap", "to-nowhere", "rename-to-nowhere", "from-current", "cycle", "retired-and-live"],
)
def test_broken_chains_fail_validation(build, problem: str) -> None:  # type: ignore[no-untyped-def]
    r = EventRegistry(Renewed, Acquired)
    build(r)
    with pytest.raises(UpcasterChainError, match=problem):
        r.validate()


def test_duplicate_steps_fail_at_registration() -> None:
    r = EventRegistry(Renewed)
    r.add_upcaster("LicenseRenewed", 1, dict)
    with pytest.raises(UpcasterChainError, match="duplicate"):
        r.add_upcaster("LicenseRenewed", 1, dict)
    with pytest.raises(UpcasterChainError, match="duplicate"):
        r.rename_type("LicenseRenewed", 1, "X")


def test_reading_validates_first() -> None:
    r = EventRegistry(Renewed)  # v3 with no steps: broken
    with pytest.raises(UpcasterChainError):
        r.decode(record("LicenseRenewed", 3, {"license_id": "L", "days": 1, "counts_as_download": True}))


def test_a_split_that_returns_an_undeclared_shape_fails_loudly() -> None:
    r = EventRegistry(Released)
    r.split("Old", 1, lambda d: [("Surprise", 1, {})], into=[("LicenseReleased", 1)])
    with pytest.raises(UpcasterChainError, match="undeclared"):
        r.decode(record("Old", 1, {}))


def test_registering_a_non_event_or_a_second_class_for_a_type_fails() -> None:
    r = EventRegistry(Released)
    with pytest.raises(UpcasterChainError):
        r.register(dict)  # type: ignore[arg-type]

    class Other(DomainEvent, frozen=True):
        event_type = "LicenseReleased"

    with pytest.raises(UpcasterChainError, match="twice"):
        r.register(Other)


# -- encoding for the store: the direct path and its equivalence to the checked one ---------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(msgspec.Struct, frozen=True):
    name: str
    tags: tuple[str, ...] = ()


class Rich(DomainEvent, frozen=True):
    event_type = "Rich"
    title: str
    count: int
    flag: bool
    when: datetime
    ref: uuid.UUID
    colour: Colour
    kind: Literal["a", "b"]
    inner: Inner
    items: list[Inner]
    by_name: dict[str, int]
    maybe: str | None = None


class WithFloat(DomainEvent, frozen=True):
    event_type = "WithFloat"
    value: float


class WithAny(DomainEvent, frozen=True):
    event_type = "WithAny"
    value: Any


class WithIntKeys(DomainEvent, frozen=True):
    event_type = "WithIntKeys"
    counts: dict[int, str]


class WithFloatInside(DomainEvent, frozen=True):
    event_type = "WithFloatInside"
    readings: list[tuple[str, float | None]]


def _strict(cls: type[DomainEvent]) -> bool:
    return EventRegistry.encodes_directly(cls)


def test_only_types_that_are_always_strict_json_take_the_direct_encoding() -> None:
    assert _strict(Rich)
    assert not any(_strict(c) for c in (WithFloat, WithAny, WithIntKeys, WithFloatInside))


def test_the_direct_encoding_stores_what_the_checked_path_stores() -> None:
    registry = EventRegistry(Rich)
    event = Rich(
        title="Über \"quoted\" \u2603",
        count=-(2**60),
        flag=True,
        when=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
        ref=uuid.UUID(int=7),
        colour=Colour.BLUE,
        kind="b",
        inner=Inner(name="x", tags=("p", "q")),
        items=[Inner(name="y")],
        by_name={"a": 1, "": 0},
    )
    prepared = registry.prepare(event, metadata=b'{"k":1}')
    checked = Validation().new_events([registry.encode(event, event_id=prepared.event_id, metadata={"k": 1})])[0]
    assert prepared == checked
    assert registry.decode_json("Rich", 1, prepared.data) == [event]


def test_a_type_that_is_not_strict_json_is_checked_like_any_append() -> None:
    registry = EventRegistry(WithFloat, WithIntKeys)
    assert registry.prepare(WithFloat(value=0.25)).data == b'{"value":0.25}'
    with pytest.raises(InvalidEventError):
        registry.prepare(WithFloat(value=float("nan")))
    with pytest.raises(InvalidEventError):
        registry.prepare(WithIntKeys(counts={1: "one"}))


def test_an_event_type_name_the_store_refuses_is_refused_when_prepared() -> None:
    class BadName(DomainEvent, frozen=True):
        event_type = "has spaces"

    with pytest.raises(InvalidEventError):
        EventRegistry(BadName).prepare(BadName())


def test_fresh_event_ids_are_version_7_time_ordered_and_unique() -> None:
    ids = [time_ordered_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis)  # the leading 48 bits are the clock, so they never go back
    random_bits = (1 << 62) - 1 | ((1 << 12) - 1) << 64  # RFC 9562: rand_b, then rand_a
    seen_one = seen_zero = 0
    for i in ids:
        seen_one |= i.int & random_bits
        seen_zero |= ~i.int & random_bits
    assert seen_one == seen_zero == random_bits  # all 74 random bits vary: none is masked off
    made = ids[0]
    assert made == uuid.UUID(str(made)) and pickle.loads(pickle.dumps(made)) == made and hash(made) == hash(
        uuid.UUID(int=made.int))


def test_a_forked_child_draws_other_event_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids' random bits, then leave at once
        os.write(write, b"".join(time_ordered_id().bytes[6:] for _ in range(4)))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 40)
    parent = b"".join(time_ordered_id().bytes[6:] for _ in range(4))
    os.close(read), os.close(write)
    assert len(child) == 40 and child != parent


@given(st.lists(st.one_of(st.text(), st.integers()), min_size=1, max_size=4))
def test_derived_event_ids_are_exactly_uuid5_of_the_joined_parts(parts: list[object]) -> None:
    # ids derived by older releases must still match, or their retries would not be recognised
    expected = uuid.uuid5(uuid.UUID("6f1f0a52-3a51-4c49-9a4b-2f4f3b0d1e77"), "\x1f".join(map(str, parts)))
    assert event_id_from(*parts) == expected and event_id_from(*parts).version == 5


@given(st.binary(min_size=16, max_size=16))
def test_ids_read_from_bytes_equal_the_standard_constructor(raw: bytes) -> None:
    made, standard = uuid_from_bytes(raw), uuid.UUID(bytes=raw)
    assert made == standard and hash(made) == hash(standard) and str(made) == str(standard)
    assert made.bytes == raw and pickle.loads(pickle.dumps(made)) == standard


@pytest.mark.parametrize("raw", [b"", b"\x01" * 15, b"\x01" * 17])
def test_ids_of_the_wrong_length_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        uuid_from_bytes(raw)
