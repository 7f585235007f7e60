"""Declaring personal fields, and the key-encryption key's own checks (no backend needed)."""

from __future__ import annotations

import base64

import pytest

from es_core import (
    FORGOTTEN,
    DomainEvent,
    EventRegistry,
    InvalidInputError,
    KeyStoreError,
    LocalKeyEncryptionKey,
    NewEvent,
    PersonalData,
    open_store,
)
from es_core.errors import SchemaError
from es_core.personal import subject_after_category


class Named(DomainEvent, frozen=True, kw_only=True):
    event_type = "Named"
    personal_fields = ("name", "note")
    device_id: str
    name: str
    note: str | None = None


class Counted(DomainEvent, frozen=True, kw_only=True):
    event_type = "Counted"
    personal_fields = ("count",)
    count: int


def test_a_registry_lists_personal_fields_by_event_type() -> None:
    registry = EventRegistry(Named)
    assert registry.personal_fields() == {"Named": ("name", "note")}
    assert PersonalData.of(registry).fields == {"Named": ("name", "note")}


def test_a_personal_field_that_cannot_hold_the_placeholder_is_refused() -> None:
    with pytest.raises(SchemaError, match="count"):
        EventRegistry(Counted)


def test_personal_data_refuses_empty_or_reserved_field_names() -> None:
    with pytest.raises(InvalidInputError):
        PersonalData({"Named": ()})
    with pytest.raises(InvalidInputError):
        PersonalData({"Named": ("$personal",)})


def test_the_default_subject_is_the_stream_id_after_its_category() -> None:
    assert subject_after_category("member-42") == "42"
    assert subject_after_category("member-a-b") == "a-b"
    assert subject_after_category("solo") == "solo"


def test_a_kek_wraps_for_one_context_only_and_hides_its_secret() -> None:
    kek = LocalKeyEncryptionKey.generate("k")
    wrapped = kek.wrap(b"k" * 32, b"alice")
    assert kek.unwrap(wrapped, b"alice") == b"k" * 32
    with pytest.raises(KeyStoreError):
        kek.unwrap(wrapped, b"bob")
    assert "hidden" in repr(kek)


def test_a_kek_text_form_round_trips_and_bad_forms_are_refused() -> None:
    secret = bytes(range(32))
    kek = LocalKeyEncryptionKey.from_text("k1:" + base64.b64encode(secret).decode())
    assert kek.key_id == "k1"
    assert kek.unwrap(LocalKeyEncryptionKey(secret, "k1").wrap(b"x" * 32, b"c"), b"c") == b"x" * 32
    good, short = base64.b64encode(secret).decode(), base64.b64encode(b"s").decode()
    for bad in ("k1", "k1:not-base64!", ":" + good, "k1:" + short):
        with pytest.raises(InvalidInputError):
            LocalKeyEncryptionKey.from_text(bad)
    with pytest.raises(InvalidInputError):
        LocalKeyEncryptionKey(b"short", "k")


class NamedV2(DomainEvent, frozen=True, kw_only=True):
    event_type = "Named"
    schema_version = 2
    personal_fields = ("name",)
    device_id: str
    name: str
    source: str


def test_upcasters_see_the_placeholder_never_the_plaintext() -> None:
    seen: list[str] = []
    registry = EventRegistry(NamedV2)

    @registry.upcaster("Named", 1)
    def add_source(data: dict[str, object]) -> dict[str, object]:
        seen.append(str(data["name"]))
        return {**data, "source": "v1"}

    store = open_store("memory://")
    store.protect(LocalKeyEncryptionKey.generate("k"), PersonalData.of(registry))
    store.append("member-ann", [NewEvent(event_type="Named", data={"device_id": "d", "name": "Ann's TV"})])
    assert [e.name for e in registry.decode(store.read_stream("member-ann")[0])] == ["Ann's TV"]  # type: ignore[attr-defined]
    store.forget("ann")
    assert [e.name for e in registry.decode(store.read_stream("member-ann")[0])] == [FORGOTTEN]  # type: ignore[attr-defined]
    assert seen == ["Ann's TV", FORGOTTEN]


def test_a_replays_spliced_payload_decodes_like_the_general_path() -> None:
    import msgspec

    store = open_store("memory://")
    store.protect(LocalKeyEncryptionKey.generate("k"), PersonalData({"Named": ("name", "note")}))
    datas = [
        {"device_id": "d", "name": "Ann's TV", "note": "x"},
        {"name": "only personal"},
        {"device_id": "d", "nested": {"k": ["$personal", {"a": 1}]}, "name": 'quote " and } brace'},
    ]
    store.append("member-ann", [NewEvent(event_type="Named", data=d) for d in datas])
    for forgotten in (False, True):
        rows = store.read_stream_payloads("member-ann")
        records = store.read_stream("member-ann")
        assert [msgspec.json.decode(r[3]) for r in rows] == [r.data for r in records]
        expected = [{**d, "name": FORGOTTEN, **({"note": FORGOTTEN} if "note" in d else {})} for d in datas]
        assert [r.data for r in records] == (expected if forgotten else datas)
        if not forgotten:
            store.forget("ann")
