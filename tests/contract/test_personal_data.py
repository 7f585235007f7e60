"""Personal fields sealed per subject, and forgetting a subject (crypto-shredding), on every backend:
what is stored, what reads back before and after ``forget``, and every refusal writing nothing."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from es_core import (
    FORGOTTEN,
    AlreadyForgottenError,
    EventStore,
    InvalidInputError,
    KeyStoreError,
    LocalKeyEncryptionKey,
    NewEvent,
    PersonalData,
    PersonalDataIntegrityError,
    PreparedEvent,
    Snapshot,
    SubjectForgottenError,
    UnknownSubjectError,
    open_store,
)

from .conftest import STORE_FACTORIES

Sid = Callable[..., str]
Reopen = Callable[[], EventStore]
PERSONAL = PersonalData({"DeviceRegistered": ("device_name", "ip_address")})
KEK = LocalKeyEncryptionKey(bytes(range(32)), "kek-1")  # one KEK for the run: Cassandra's keyspace is shared
NAME = "Ada's phone"
IP = "203.0.113.9"


@pytest.fixture
def reopen(backend: str, tmp_path: Path) -> Iterator[Reopen]:
    """The suite's ``reopen``, but on Cassandra a keyspace of its own: the sealed events written
    here would be refused (``KeyStoreError``) by the unprotected handles of other tests that read
    the shared keyspace's whole log."""
    factory = keyspace_opener("es_contract_personal") if backend == "cassandra" else STORE_FACTORIES[backend](tmp_path)
    yield from closing_all(factory)


def keyspace_opener(keyspace: str) -> Reopen:
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip(keyspace=keyspace)
    return lambda: open_store(url)


def closing_all(factory: Reopen) -> Iterator[Reopen]:
    """``factory``, closing every store it opened when the test ends."""
    opened: list[EventStore] = []

    def open_again() -> EventStore:
        opened.append(factory())
        return opened[-1]

    yield open_again
    for store in opened:
        store.close()


def device(n: int, name: str = NAME) -> NewEvent:
    return NewEvent(event_type="DeviceRegistered", data={"device_id": f"d{n}", "device_name": name, "ip_address": IP})


def played(n: int) -> NewEvent:
    return NewEvent(event_type="Played", data={"title_id": f"t{n}"})


def protect(store: EventStore, scope: str, kek: LocalKeyEncryptionKey = KEK, **options: object) -> EventStore:
    store.protect(kek, PERSONAL, scope=scope, initialise=True, **options)  # type: ignore[arg-type]
    return store


def stored_bytes(store: EventStore, stream_id: str) -> list[bytes]:
    """What the backend holds for the stream (the port's bytes-level read)."""
    return [e[6] for e in store._read_stream(stream_id, 0, None, None, False)]  # StoredEvent.data


def test_personal_fields_are_stored_sealed_and_read_back(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    store.append(s, [device(1), played(1)])
    for data in stored_bytes(store, s):
        assert NAME.encode() not in data and IP.encode() not in data
    assert b'"device_id":"d1"' in stored_bytes(store, s)[0]  # only the personal fields are sealed
    records = store.read_stream(s)
    assert records[0].data == {"device_id": "d1", "device_name": NAME, "ip_address": IP}
    assert records[1].data == {"title_id": "t1"}
    logged = [r for r in store.read_all(after=records[0].position - 1) if r.stream_id == s]
    assert [r.data for r in logged] == [r.data for r in records]
    rows = store.read_stream_payloads(s)
    assert msgspec.json.decode(rows[0][3]) == records[0].data


def test_forgetting_shreds_personal_fields_and_keeps_the_log(store: EventStore, sid: Sid) -> None:
    s, other = sid("member"), sid("member") + "x"
    protect(store, s)
    store.append(s, [device(1), played(1), device(2, "Kitchen TV")])
    store.append(other, [device(3, "Other's laptop")])
    before = store.read_stream(s)
    store.forget(s.partition("-")[2])
    after = store.read_stream(s)
    assert [(r.version, r.position, r.event_id, r.event_type) for r in after] == [
        (r.version, r.position, r.event_id, r.event_type) for r in before
    ]
    assert after[0].data == {"device_id": "d1", "device_name": FORGOTTEN, "ip_address": FORGOTTEN}
    assert after[1].data == {"title_id": "t1"}
    assert after[2].data["device_name"] == FORGOTTEN
    assert [r.data for r in store.read_all(after=before[0].position - 1) if r.stream_id == s] == [r.data for r in after]
    assert msgspec.json.decode(store.read_stream_payloads(s)[0][3])["device_name"] == FORGOTTEN
    assert store.read_stream(other)[0].data["device_name"] == "Other's laptop"
    assert store.stream_version(s) == 3


def test_forgetting_an_unknown_subject_or_twice_is_refused(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    keys = protect(store, s).key_store
    assert keys is not None
    with pytest.raises(UnknownSubjectError):
        store.forget("nobody-" + s)
    store.append(s, [device(1)])
    subject = s.partition("-")[2]
    store.forget(subject)
    with pytest.raises(AlreadyForgottenError):
        store.forget(subject)
    assert keys.status(subject) == "forgotten" and keys.status("nobody-" + s) == "unknown"
    assert list(keys.forgotten()) == [subject]


def test_personal_fields_of_a_forgotten_subject_are_refused_and_nothing_is_written(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    store.append(s, [device(1)])
    store.forget(s.partition("-")[2])
    head = store.head_position()
    with pytest.raises(SubjectForgottenError):
        store.append(s, [played(2), device(2)])
    with pytest.raises(SubjectForgottenError):
        store.append_prepared(s, [PreparedEvent(uuid.uuid4(), "DeviceRegistered", 1, b'{"device_name":"x"}', b"{}")])
    assert store.stream_version(s) == 1 and store.head_position() == head
    assert store.append(s, [played(2)]).last_version == 2  # events without personal fields still go in


def test_tampered_ciphertext_is_an_integrity_error_and_nothing_is_decoded(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    store.append(s, [device(1)])
    data = msgspec.json.decode(stored_bytes(store, s)[0])
    sealed = bytearray(base64.b64decode(data["$personal"]["sealed"]))
    sealed[-1] ^= 1
    data["$personal"]["sealed"] = base64.b64encode(bytes(sealed)).decode()
    forged = PreparedEvent(uuid.uuid4(), "DeviceRegistered", 1, msgspec.json.encode(data), b"{}")
    store._append(s, [forged], 1, datetime.now(UTC))  # past the public API: as if the stored bytes changed
    with pytest.raises(PersonalDataIntegrityError):
        store.read_stream(s)
    with pytest.raises(PersonalDataIntegrityError):
        store.read_stream_payloads(s)
    assert store.read_stream(s, upto=1)[0].data["device_name"] == NAME


def test_a_lost_or_foreign_key_store_is_a_start_up_error(reopen: Reopen, sid: Sid) -> None:
    s = sid("member")
    protect(reopen(), s).append(s, [device(1)])
    with pytest.raises(KeyStoreError):  # an empty key store for a log that is not empty
        reopen().protect(KEK, PERSONAL, scope=s + "-lost")
    with pytest.raises(KeyStoreError):  # another KEK
        reopen().protect(LocalKeyEncryptionKey.generate("kek-other"), PERSONAL, scope=s)


def test_a_store_opened_without_its_key_store_refuses_sealed_events(reopen: Reopen, sid: Sid) -> None:
    s = sid("member")
    store = protect(reopen(), s)
    store.append(s, [device(1)])
    plain = reopen()
    if plain is store:  # the memory store: "reopening" is the same object
        pytest.skip("a memory store cannot be reopened without its key store")
    with pytest.raises(KeyStoreError):
        plain.read_stream(s)
    with pytest.raises(KeyStoreError):
        plain.read_stream_payloads(s)
    with pytest.raises(KeyStoreError):
        list(plain.read_all(after=store.read_stream(s)[0].position - 1))


def test_a_protected_store_is_known_as_such_without_its_key(reopen: Reopen, sid: Sid) -> None:
    """``has_key_store`` answers on any handle, without the KEK; ``personal_data`` is what the
    handle was protected with."""
    s = sid("member")
    plain = reopen()
    assert not plain.has_key_store(s) and plain.personal_data is None
    store = protect(reopen(), s)
    assert store.personal_data is PERSONAL
    for handle in (store, plain, reopen()):
        assert handle.has_key_store(s)
        assert not handle.has_key_store(s + "-other")
    with pytest.raises(InvalidInputError):
        plain.has_key_store("")


def test_the_global_log_as_stored_needs_no_key_store_and_shows_nothing_sealed(reopen: Reopen, sid: Sid) -> None:
    """``read_all(as_stored=True)`` (what the subscription admin reads for positions and times)
    hands sealed entries over sealed, on a handle with or without the key store."""
    s = sid("member")
    store = protect(reopen(), s)
    store.append(s, [device(1), played(1)])
    first = store.read_stream(s)[0].position - 1
    for handle in (store, reopen()):
        records = [r for r in handle.read_all(after=first, as_stored=True) if r.stream_id == s]
        assert [r.event_type for r in records] == ["DeviceRegistered", "Played"]
        assert records[0].data["$personal"]["subject"] == s.partition("-")[2]
        assert NAME not in str(records[0].data) and IP not in str(records[0].data)
        assert records[0].data["device_id"] == "d1" and records[1].data == {"title_id": "t1"}
    opened = [r for r in store.read_all(after=first) if r.stream_id == s]
    assert opened[0].data["device_name"] == NAME


def test_kek_rotation_rewraps_every_key_and_keeps_events_readable(reopen: Reopen, sid: Sid) -> None:
    s, t = sid("member"), sid("member") + "t"
    store = protect(reopen(), s)
    keys = store.key_store
    assert keys is not None
    store.append(s, [device(1)])
    store.append(t, [device(2)])
    store.forget(t.partition("-")[2])
    new = LocalKeyEncryptionKey.generate("kek-2")
    assert keys.rotate(new) == 1  # the forgotten subject has no key left to re-wrap
    assert keys.rotate(new) == 0  # idempotent
    fresh = reopen()
    fresh.protect(new, PERSONAL, scope=s)
    assert fresh.read_stream(s)[0].data["device_name"] == NAME
    assert fresh.read_stream(t)[0].data["device_name"] == FORGOTTEN
    with pytest.raises(KeyStoreError):
        reopen().protect(KEK, PERSONAL, scope=s)


def test_two_handles_agree_on_a_new_subjects_key(reopen: Reopen, sid: Sid) -> None:
    s = sid("member")
    first, second = protect(reopen(), s), protect(reopen(), s)
    first.append(s, [device(1, "one")])
    second.append(s, [device(2, "two")])
    for handle in (first, second):
        assert [r.data["device_name"] for r in handle.read_stream(s)] == ["one", "two"]


def test_snapshots_are_sealed_and_dropped_once_their_subject_is_forgotten(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    store.append(s, [device(1)])
    state = msgspec.json.encode({"devices": {"d1": NAME}})
    store.save_snapshot(
        Snapshot(
            stream_id=s, version=1, state_type="T", state_schema_version=1, state=state, taken_at=datetime.now(UTC)
        )
    )
    raw = store._latest_snapshot(s, None)
    assert raw is not None and NAME.encode() not in raw.state
    latest = store.latest_snapshot(s)
    assert latest is not None and latest.state == state
    store.forget(s.partition("-")[2])
    assert store.latest_snapshot(s) is None  # a load replays the events instead
    with pytest.raises(SubjectForgottenError):
        store.save_snapshot(
            Snapshot(
                stream_id=s, version=1, state_type="T", state_schema_version=1, state=state, taken_at=datetime.now(UTC)
            )
        )


def test_keys_never_appear_in_reprs_or_errors(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    secret = bytes(range(100, 132))
    kek = LocalKeyEncryptionKey(secret, "kek-secret")
    keys = store.protect(kek, PERSONAL, scope=s, initialise=True)
    store.append(s, [device(1)])
    shown = [repr(kek), repr(keys), repr(store)]
    for attempt in (lambda: store.forget("nobody"), lambda: reopen_with_other_kek(store, s)):
        try:
            attempt()
        except Exception as exc:
            shown.append(str(exc))
    forms = (secret.hex(), base64.b64encode(secret).decode(), repr(secret))
    assert len(shown) == 5 and not any(form in text for text in shown for form in forms)


def reopen_with_other_kek(store: EventStore, scope: str) -> None:
    store.protect(LocalKeyEncryptionKey.generate("kek-wrong"), PERSONAL, scope=scope)


def test_an_unsealed_snapshot_of_a_forgotten_subject_is_kept_when_asked_for(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    store.append(s, [device(1)])
    store.forget(s.partition("-")[2])
    state = msgspec.json.encode({"forgotten": True})
    store.save_snapshot(
        Snapshot(
            stream_id=s, version=1, state_type="T", state_schema_version=1, state=state, taken_at=datetime.now(UTC)
        ),
        sealed=False,
    )  # the caller vouches: nothing personal
    latest = store.latest_snapshot(s)
    assert latest is not None and latest.state == state


def split_records(store: EventStore, stream_id: str) -> list[dict[str, object]]:
    """The stream's records as the splits of the store (``read_split``) deliver them."""
    return [r.data for split in store.split(4) for r in store.read_split(split) if r.stream_id == stream_id]


@pytest.fixture
def split_reopen(backend: str, reopen: Reopen) -> Iterator[Reopen]:
    """``reopen``, but on Cassandra a keyspace whose events are all sealed under one scope: splits
    read the whole keyspace, and the personal keyspace holds other tests' scopes."""
    if backend != "cassandra":
        yield reopen
    else:
        yield from closing_all(keyspace_opener("es_contract_personal_splits"))


def test_partitioned_reads_open_sealed_fields_as_every_read_does(split_reopen: Reopen, sid: Sid) -> None:
    s = sid("member")
    store = protect(split_reopen(), "splits")  # one scope on every run: earlier runs' events stay readable
    store.append(s, [device(1), played(1)])
    assert split_records(store, s) == [r.data for r in store.read_stream(s)]
    assert split_records(store, s)[0]["device_name"] == NAME
    store.forget(s.partition("-")[2])
    assert split_records(store, s)[0] == {"device_id": "d1", "device_name": FORGOTTEN, "ip_address": FORGOTTEN}
    plain = split_reopen()
    if plain is not store:  # a handle without the key store (a worker's, say) refuses: no plaintext, no ciphertext
        with pytest.raises(KeyStoreError):
            split_records(plain, s)


def _forge(store: EventStore, stream_id: str, version: int, change: Callable[[dict[str, object]], None]) -> None:
    """Append, past the public API, a copy of the stream's first event with its stored data
    changed: as if the stored bytes had been edited."""
    data = msgspec.json.decode(stored_bytes(store, stream_id)[0])
    change(data)
    forged = PreparedEvent(uuid.uuid4(), "DeviceRegistered", 1, msgspec.json.encode(data), b"{}")
    store._append(stream_id, [forged], version, datetime.now(UTC))


def test_a_sealed_entry_naming_another_subject_is_an_integrity_error(store: EventStore, sid: Sid) -> None:
    s, t = sid("member"), sid("member") + "t"
    protect(store, s)
    store.append(s, [device(1)])
    store.append(t, [device(2)])
    store.forget(t.partition("-")[2])
    for version, subject in ((1, t.partition("-")[2]), (2, "nobody")):  # a forgotten one, an unknown one
        _forge(store, s, version, lambda data, subject=subject: data["$personal"].update(subject=subject))  # type: ignore[attr-defined]
        with pytest.raises(PersonalDataIntegrityError, match="names another subject"):
            store.read_stream(s, after=version, upto=version + 1)
        with pytest.raises(PersonalDataIntegrityError):
            store.read_stream_payloads(s, after=version, upto=version + 1)
    assert store.read_stream(s, upto=1)[0].data["device_name"] == NAME


def test_the_reserved_key_is_refused_in_every_event_of_a_protected_store(store: EventStore, sid: Sid) -> None:
    s = sid("member")
    protect(store, s)
    head = store.head_position()
    for event in (NewEvent(event_type="Played", data={"$personal": 1}), device(1)):
        event.data["$personal"] = {"subject": "x"}
        with pytest.raises(InvalidInputError, match="reserved key"):
            store.append(s, [played(0), event])
    assert store.read_stream(s) == [] and store.head_position() == head  # nothing written
    store.append(s, [NewEvent(event_type="Played", data={"note": '"$personal"'})])  # in a value: fine
    assert store.read_stream(s)[0].data == {"note": '"$personal"'}


def test_another_key_under_the_current_kek_id_is_refused_by_a_rotation(reopen: Reopen, sid: Sid) -> None:
    s = sid("member")
    store = protect(reopen(), s)
    keys = store.key_store
    assert keys is not None
    store.append(s, [device(1)])
    impostor = LocalKeyEncryptionKey.generate(KEK.key_id)  # a new secret under the same id
    with pytest.raises(InvalidInputError, match="needs a new key_id"):
        keys.rotate(impostor)
    assert keys.rotate(KEK) == 0  # the same key again: nothing to do, and allowed
    fresh = reopen()
    fresh.protect(KEK, PERSONAL, scope=s)  # still opens with the KEK it has
    assert fresh.read_stream(s)[0].data["device_name"] == NAME
