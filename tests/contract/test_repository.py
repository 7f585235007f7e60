"""Aggregates, the repository and snapshots, on every backend: snapshots are invisible
(snapshot + tail == full replay == state at every intermediate version)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from es_core import (
    Aggregate,
    ConcurrencyError,
    DomainEvent,
    EventRegistry,
    EventStore,
    HistoryTruncatedError,
    InvalidEventError,
    InvalidInputError,
    JsonlArchive,
    PayloadTooLargeError,
    Repository,
    Snapshot,
    SnapshotPolicy,
    UnknownEventTypeError,
    applies,
    archive_before_snapshot,
)

Sid = Callable[..., str]


class Deposited(DomainEvent, frozen=True):
    event_type = "Deposited"
    amount: int


class Withdrawn(DomainEvent, frozen=True):
    event_type = "Withdrawn"
    amount: int


class Wallet(Aggregate["Wallet.State"]):
    aggregate_type = "wallet"

    class State(msgspec.Struct):
        balance: int = 0
        moves: int = 0
        history: list[int] = msgspec.field(default_factory=list)

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.state.balance:
            raise ValueError("insufficient funds")
        self.record(Withdrawn(amount=amount))

    @applies(Deposited)
    def _deposited(self, e: Deposited) -> None:
        self.state.balance += e.amount
        self.state.moves += 1
        self.state.history.append(e.amount)

    @applies(Withdrawn)
    def _withdrawn(self, e: Withdrawn) -> None:
        self.state.balance -= e.amount
        self.state.moves += 1
        self.state.history.append(-e.amount)


REGISTRY = EventRegistry(Deposited, Withdrawn)


def repo(store: EventStore, every: int | None = None, **kwargs: object) -> Repository[Wallet]:
    return Repository(store, REGISTRY, Wallet, SnapshotPolicy(every=every, keep=3), **kwargs)  # type: ignore[arg-type]


def fill(repository: Repository[Wallet], wallet_id: str, amounts: list[int], per_save: int = 1) -> None:
    for start in range(0, len(amounts), per_save):
        wallet = repository.load(wallet_id)
        for amount in amounts[start : start + per_save]:
            wallet.deposit(amount) if amount >= 0 else wallet.withdraw(-amount)
        repository.save(wallet)


def test_save_and_load_round_trip(store: EventStore, sid: Sid) -> None:
    r = repo(store)
    w = r.load(sid())
    assert w.version == 0 and w.state.balance == 0
    w.deposit(10)
    w.deposit(5)
    result = r.save(w)
    assert result.last_version == 2 and w.version == 2 and w.pending == []
    again = r.load(w.id)
    assert (again.version, again.state.balance, again.state.history) == (2, 15, [10, 5])


class Measured(DomainEvent, frozen=True):
    """Floats cannot take the registry's direct encoding (NaN has no JSON form)."""

    event_type = "Measured"
    value: float


class Noted(DomainEvent, frozen=True):
    event_type = "Noted"
    text: str


class Jar(Aggregate["Jar.State"]):
    aggregate_type = "jar"

    class State(msgspec.Struct):
        values: list[float] = msgspec.field(default_factory=list)

    @applies(Measured)
    def _measured(self, e: Measured) -> None:
        self.state.values.append(e.value)

    @applies(Noted)
    def _noted(self, e: Noted) -> None:
        pass


@pytest.mark.parametrize(
    ("pending", "metadata", "error"),
    [
        ([Measured(value=1.5), Measured(value=float("nan"))], None, InvalidEventError),
        ([Measured(value=float("inf"))], None, InvalidEventError),
        ([Measured(value=1.0)], {"trace": float("nan")}, InvalidEventError),
        ([Measured(value=1.0)], {1: "not a str key"}, InvalidEventError),
        ([Measured(value=1.0)], ["not", "a", "mapping"], InvalidEventError),
        ([Noted(text="x" * 2000)], None, PayloadTooLargeError),
        ([Measured(value=1.0)] * 1001, None, InvalidEventError),
        ([Deposited(amount=1)], None, UnknownEventTypeError),  # not in this repository's registry
    ],
    ids=["nan-in-batch", "infinity", "nan-metadata", "int-key-metadata", "list-metadata", "too-large", "too-many",
         "unregistered"],
)
def test_a_save_with_bad_input_writes_nothing(
    store: EventStore, sid: Sid, pending: list[DomainEvent], metadata: dict | None, error: type[Exception]  # type: ignore[type-arg]
) -> None:
    store.payload_limit = 1024
    r = Repository(store, EventRegistry(Measured, Noted), Jar)
    jar = r.load(sid())
    jar.pending = list(pending)
    with pytest.raises(error):
        r.save(jar, metadata=metadata)
    assert store.stream_version(jar.stream_id) == 0 and jar.version == 0
    jar.pending = [Measured(value=2.5)]
    r.save(jar, request_id="req-1", metadata={"source": "test"})
    stored = store.read_stream(jar.stream_id)
    assert [(e.data, e.metadata) for e in stored] == [({"value": 2.5}, {"source": "test", "request_id": "req-1"})]
    assert r.load(jar.id).state.values == [2.5]


def test_save_metadata_may_be_any_mapping_and_defaults_to_empty(store: EventStore, sid: Sid) -> None:
    r = Repository(store, EventRegistry(Measured, Noted), Jar)
    jar = r.load(sid())
    jar.pending = [Measured(value=1.0)]
    r.save(jar, metadata=MappingProxyType({"source": "proxy"}))
    jar.pending = [Measured(value=2.0)]
    r.save(jar)
    assert [e.metadata for e in store.read_stream(jar.stream_id)] == [{"source": "proxy"}, {}]


def test_a_stale_aggregate_cannot_overwrite(store: EventStore, sid: Sid) -> None:
    r = repo(store)
    a, b = r.load(sid()), r.load(sid())
    assert a.id == b.id
    a.deposit(1)
    r.save(a)
    b.deposit(2)
    with pytest.raises(ConcurrencyError):
        r.save(b)
    assert r.load(a.id).state.history == [1]


def test_a_saved_request_retried_writes_nothing_new(store: EventStore, sid: Sid) -> None:
    r = repo(store)
    wid = sid()
    first = r.load(wid)
    first.deposit(7)
    r.save(first, request_id="req-1")
    retry = r.load(wid, at_version=0)  # the client retries from what it had before
    retry.deposit(7)
    result = r.save(retry, request_id="req-1")
    assert result.duplicate
    assert r.load(wid).state.history == [7]


def test_state_at_a_version_and_as_of_a_time(store: EventStore, sid: Sid) -> None:
    now = [datetime(2026, 3, 1, tzinfo=UTC)]
    store.clock = lambda: now[0]
    r = repo(store, every=2)
    wid = sid()
    for i in range(1, 6):
        now[0] += timedelta(hours=1)
        fill(r, wid, [i])
    assert r.load(wid, at_version=3).state.history == [1, 2, 3]
    assert r.load(wid, at_version=0).state.history == []
    as_of = datetime(2026, 3, 1, 2, 30, tzinfo=UTC)  # after the 2nd event (02:00), before the 3rd (03:00)
    past = r.load(wid, as_of=as_of)
    assert (past.version, past.state.history) == (2, [1, 2])
    assert r.load(wid, as_of=datetime(2026, 3, 1, 3, tzinfo=UTC)).state.history == [1, 2, 3]  # inclusive
    assert r.load(wid, as_of=datetime(2025, 1, 1, tzinfo=UTC)).version == 0
    with pytest.raises(InvalidInputError):
        r.load(wid, at_version=99)
    with pytest.raises(InvalidInputError):
        r.load(wid, as_of=datetime(2026, 3, 1))  # naive
    with pytest.raises(InvalidInputError):
        r.load(wid, at_version=1, as_of=as_of)


def test_snapshots_are_taken_every_n_and_pruned(store: EventStore, sid: Sid) -> None:
    r = repo(store, every=3)
    wid = sid()
    fill(r, wid, list(range(1, 17)))
    stream = Wallet.stream_id_for(wid)
    assert store.snapshot_versions(stream) == [15, 12, 9]  # keep=3
    loaded = r.load(wid)
    assert loaded.snapshot_version == 15 and loaded.replayed_on_load == 1
    assert loaded.state.history == list(range(1, 17))


def test_a_policy_on_replay_length(store: EventStore, sid: Sid) -> None:
    plain = repo(store)
    wid = sid()
    fill(plain, wid, list(range(20)), per_save=5)
    r = Repository(store, REGISTRY, Wallet, SnapshotPolicy(replayed_more_than=10))
    w = r.load(wid)
    assert w.replayed_on_load == 20
    w.deposit(1)
    r.save(w)
    assert store.snapshot_versions(Wallet.stream_id_for(wid)) == [21]


def _corrupt(store: EventStore, stream: str, version: int, **changes: object) -> None:
    good = store.latest_snapshot(stream, upto=version)
    assert good is not None
    store.save_snapshot(msgspec.structs.replace(good, **changes))


@pytest.mark.parametrize(
    "damage",
    [
        {"state": b"{not json"},
        {"state": b'{"balance": "lots"}'},
        {"state_schema_version": 99},
        {"state_type": "someone-else"},
    ],
    ids=["corrupt", "wrong-shape", "stale-schema", "wrong-type"],
)
def test_unusable_snapshots_are_ignored_and_state_is_rebuilt(store: EventStore, sid: Sid, damage: dict) -> None:  # type: ignore[type-arg]
    r = repo(store, every=4)
    wid = sid()
    fill(r, wid, list(range(1, 11)))
    stream = Wallet.stream_id_for(wid)
    _corrupt(store, stream, 8, **damage)
    fresh = repo(store, every=4)
    loaded = fresh.load(wid)
    assert loaded.state.history == list(range(1, 11))
    assert fresh.stats.snapshots_ignored == 1 and fresh.stats.snapshot_hits == 0
    assert loaded.replayed_on_load == 10
    loaded.deposit(11)
    fresh.save(loaded)  # the next save writes a fresh, usable snapshot
    assert store.latest_snapshot(stream).version == 11  # type: ignore[union-attr]
    assert repo(store).load(wid).snapshot_version == 11


def test_a_missing_snapshot_table_row_is_fine(store: EventStore, sid: Sid) -> None:
    r = repo(store, every=2)
    wid = sid()
    fill(r, wid, [1, 2, 3, 4, 5])
    stream = Wallet.stream_id_for(wid)
    store.prune_snapshots(stream, keep=0)
    assert repo(store).load(wid).state.history == [1, 2, 3, 4, 5]


def test_retention_archives_then_drops_pre_snapshot_events(store: EventStore, sid: Sid, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = repo(store, every=5)
    wid = sid()
    fill(r, wid, list(range(1, 13)))
    archive = JsonlArchive(tmp_path / "archive.jsonl")
    removed = archive_before_snapshot(r, wid, archive)
    assert removed == 9  # snapshot at v10 keeps events 10..12
    assert [e.version for e in archive.read()] == list(range(1, 10))
    assert r.load(wid).state.history == list(range(1, 13))
    assert r.load(wid, at_version=11).state.history == list(range(1, 12))
    assert r.load(wid, at_version=5).state.history == [1, 2, 3, 4, 5]  # from the v5 snapshot
    with pytest.raises(HistoryTruncatedError):
        r.load(wid, at_version=3)  # no snapshot at or before v3, and v1..v9 are archived
    store.prune_snapshots(Wallet.stream_id_for(wid), keep=0)
    with pytest.raises(HistoryTruncatedError):
        repo(store).load(wid)


def test_retention_refuses_without_a_usable_snapshot(store: EventStore, sid: Sid) -> None:
    r = repo(store)
    wid = sid()
    fill(r, wid, [1, 2, 3])
    with pytest.raises(HistoryTruncatedError):
        archive_before_snapshot(r, wid)
    assert len(store.read_stream(Wallet.stream_id_for(wid))) == 3


def test_a_cached_repository_notices_another_writer(store: EventStore, sid: Sid) -> None:
    cached = repo(store, cache_size=10)
    other = repo(store)
    wid = sid()
    fill(cached, wid, [1])
    fill(other, wid, [2])
    w = cached.load(wid)  # from the cache, one version behind
    assert cached.stats.cache_hits == 1
    w.deposit(3)
    with pytest.raises(ConcurrencyError):
        cached.save(w)
    fresh = cached.load(wid)  # evicted, so this reads the store
    assert fresh.state.history == [1, 2]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amounts=st.lists(st.integers(1, 50), min_size=1, max_size=30),
    every=st.integers(1, 7),
    per_save=st.integers(1, 4),
)
def test_snapshot_plus_tail_equals_full_replay_at_every_version(
    store: EventStore, amounts: list[int], every: int, per_save: int
) -> None:
    wid = uuid.uuid4().hex
    with_snapshots = repo(store, every=every)
    fill(with_snapshots, wid, amounts, per_save)
    without = Repository(store, REGISTRY, Wallet)  # reads no snapshot: it has none of its own policy...
    full = Wallet(wid)
    for record in store.read_stream(Wallet.stream_id_for(wid)):
        for event in REGISTRY.decode(record):
            full.apply(event)
    assert with_snapshots.load(wid).state == full.state
    for v in range(len(amounts) + 1):
        assert with_snapshots.load(wid, at_version=v).state.history == amounts[:v]
    assert without.load(wid).state == full.state


def test_snapshot_encoding_is_the_state(store: EventStore, sid: Sid) -> None:
    r = repo(store, every=1)
    wid = sid()
    fill(r, wid, [4, 2])
    snap = store.latest_snapshot(Wallet.stream_id_for(wid))
    assert isinstance(snap, Snapshot)
    assert msgspec.json.decode(snap.state) == {"balance": 6, "moves": 2, "history": [4, 2]}
    assert (snap.state_type, snap.state_schema_version, snap.version) == ("wallet", 1, 2)
