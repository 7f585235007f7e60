"""The aggregate repository: load = latest usable snapshot + the events after it; save = one
conditional append, then (from the in-memory aggregate, never a re-read) the snapshot policy."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from .aggregate import Aggregate
from .codec import EventRegistry
from .encoding import NO_METADATA, encode_metadata
from .errors import (
    ConcurrencyError,
    EventSourcingError,
    HistoryTruncatedError,
    InvalidInputError,
    SnapshotError,
    StoreCorruptionError,
    StoreError,
)
from .events import AppendResult, PayloadRow, RecordedEvent, Snapshot
from .ids import event_id_from
from .snapshots import NO_SNAPSHOTS, SnapshotPolicy
from .stores.base import EventStore

A = TypeVar("A", bound=Aggregate[Any])
log = logging.getLogger(__name__)


@dataclass
class RepositoryStats:
    """Counters a notebook or benchmark can read to see what loads actually did."""

    loads: int = 0
    events_replayed: int = 0
    snapshot_hits: int = 0
    snapshots_ignored: int = 0
    snapshots_saved: int = 0
    snapshot_failures: int = 0
    cache_hits: int = 0


class Repository(Generic[A]):
    def __init__(
        self,
        store: EventStore,
        registry: EventRegistry,
        aggregate_cls: type[A],
        snapshot_policy: SnapshotPolicy = NO_SNAPSHOTS,
        *,
        cache_size: int = 0,
    ) -> None:
        """``cache_size`` > 0 keeps that many recently saved aggregates in memory (as encoded
        state). A cached aggregate is trusted optimistically: if another writer moved the
        stream, the next save raises ``ConcurrencyError`` and evicts it, and the caller reloads
        and decides again, exactly as without a cache."""
        registry.validate()  # broken upcaster chains fail here, before any event is read
        self.store = store
        self.registry = registry
        self.aggregate_cls = aggregate_cls
        self.snapshot_policy = snapshot_policy
        self.stats = RepositoryStats()
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[int, int, bytes]] = OrderedDict()
        self._plan: Mapping[str, tuple[int, Callable[[bytes], Any], Callable[[Any, Any], None]]] = {}
        self._plan_source: object = None

    # -- loading -------------------------------------------------------------------------

    def load(self, aggregate_id: str, *, at_version: int | None = None, as_of: datetime | None = None) -> A:
        """The aggregate now, at a version, or as of a moment (events recorded at or before it).
        A stream with no events loads as a new aggregate at version 0."""
        if at_version is not None and as_of is not None:
            raise InvalidInputError("give at_version or as_of, not both")
        bad_version = not isinstance(at_version, int) or isinstance(at_version, bool) or at_version < 0
        if at_version is not None and bad_version:
            raise InvalidInputError(f"at_version must be an int >= 0, not {at_version!r}")
        if as_of is not None and (not isinstance(as_of, datetime) or as_of.tzinfo is None):
            raise InvalidInputError("as_of must be a timezone-aware datetime")
        aggregate = self.aggregate_cls(aggregate_id)
        stream_id = aggregate.stream_id
        self.stats.loads += 1
        if at_version is None and as_of is None and stream_id in self._cache:
            version, snapshot_version, state = self._cache[stream_id]
            self._cache.move_to_end(stream_id)
            aggregate.restore_state(state)
            aggregate.version, aggregate.snapshot_version = version, snapshot_version
            aggregate.loaded_from = "cache"
            self.stats.cache_hits += 1
            return aggregate
        snapshot = self._usable_snapshot(aggregate, at_version, as_of)
        try:
            return self._load_from(aggregate, snapshot, at_version, as_of)
        except _SnapshotAhead:
            # a snapshot past the stream's end (restored from elsewhere, or the events were lost):
            # trusting it would leave every later save in conflict, so rebuild from the events
            log.warning("ignoring snapshot of %s ahead of its stream", stream_id)
            self.stats.snapshots_ignored += 1
            self.stats.snapshot_hits -= 1
            return self._load_from(self.aggregate_cls(aggregate_id), None, at_version, as_of)

    def _load_from(self, aggregate: A, snapshot: Snapshot | None, at_version: int | None, as_of: datetime | None) -> A:
        stream_id = aggregate.stream_id
        start = 0
        aggregate.loaded_from = "events" if snapshot is None else "snapshot"
        if snapshot is not None:  # its state is restored already
            aggregate.version = aggregate.snapshot_version = start = snapshot.version
            self.stats.snapshot_hits += 1
        if at_version == 0:
            return aggregate
        # a replay decodes each stored payload straight into its event class; as_of needs each
        # event's time, so it reads whole records
        rows: list[PayloadRow] = []
        records: list[RecordedEvent] = []
        if as_of is None:
            rows = self.store.read_stream_payloads(stream_id, after=start, upto=at_version)
            first = rows[0][0] if rows else None
        else:
            records = self.store.read_stream(stream_id, after=start, upto=at_version)
            first = records[0].version if records else None
        if first is None and snapshot is not None and at_version is None and as_of is None:
            if self.store.stream_version(stream_id) < snapshot.version:
                raise _SnapshotAhead
        # retention always keeps a stream's latest event, so an empty read before it means archived
        wanted_more = at_version is not None and at_version > start
        truncated_before_target = first is None and wanted_more and self.store.stream_version(stream_id) > start
        if truncated_before_target or (first is not None and first != start + 1):
            raise HistoryTruncatedError(
                f"{stream_id!r}: the events after version {start} were archived "
                f"and no usable snapshot covers them"
            )
        replayed = self._replay_payloads(aggregate, rows) if as_of is None else self._replay(aggregate, records, as_of)
        if at_version is not None and aggregate.version < at_version:
            raise InvalidInputError(f"{stream_id!r} has {aggregate.version} events, fewer than {at_version}")
        aggregate.replayed_on_load = replayed
        return aggregate

    def _replay(self, aggregate: A, records: list[RecordedEvent], as_of: datetime | None) -> int:
        decode = self.registry.decode
        replayed = 0
        for record in records:
            if as_of is not None and record.recorded_at > as_of:
                break
            if record.version != aggregate.version + 1:
                raise _gap(aggregate, record.version)
            for event in decode(record):
                aggregate.apply(event)
            aggregate.version = record.version
            replayed += 1
        self.stats.events_replayed += replayed
        return replayed

    def _replay_payloads(self, aggregate: A, rows: list[PayloadRow]) -> int:
        """Apply stored payloads in order. An event at its type's current schema version with
        a handler takes the replay plan: decoded straight into its class and handed to the
        handler, as ``registry.decode_json`` and ``aggregate.apply`` would (a test holds the two
        paths to the same state); anything else (older shapes, unknown types) takes those."""
        if not rows:
            return 0
        if rows[-1][0] - rows[0][0] != len(rows) - 1 or rows[0][0] != aggregate.version + 1:
            # versions come sorted and unique, so they are consecutive exactly when this holds
            raise _gap(aggregate, _first_jump(aggregate.version, rows))
        plan, decode = self._replay_plan(), self.registry.decode_json
        apply, stream_id = aggregate.apply, aggregate.stream_id
        version, event_type, schema_version, data = 0, "", 0, b""
        try:
            for version, event_type, schema_version, data in rows:
                step = plan.get(event_type)
                if step is not None and step[0] == schema_version:
                    step[2](aggregate, step[1](data))
                else:
                    for event in decode(event_type, schema_version, data, stream_id=stream_id, version=version):
                        apply(event)
        except msgspec.DecodeError:  # a payload that does not fit: decode_json says so in the project's terms
            decode(event_type, schema_version, data, stream_id=stream_id, version=version)
            raise
        aggregate.version = version
        self.stats.events_replayed += len(rows)
        return len(rows)

    def _replay_plan(self) -> Mapping[str, tuple[int, Callable[[bytes], Any], Callable[[Any, Any], None]]]:
        """Per event type: (current schema version, payload decoder, the aggregate's handler),
        for types the aggregate handles with the base class's ``apply`` (an aggregate that
        overrides ``apply`` gets no plan: its ``apply`` must see every event)."""
        decoders = self.registry.current_decoders()
        if self._plan_source is not decoders:  # the registry changed: plan again
            cls = self.aggregate_cls
            handlers = cls._handlers if cls.apply is Aggregate.apply else {}
            classes = self.registry.classes
            self._plan = {
                name: (schema_version, decoder, handlers[classes[name]])
                for name, (schema_version, decoder) in decoders.items()
                if classes[name] in handlers
            }
            self._plan_source = decoders
        return self._plan

    def _usable_snapshot(self, aggregate: A, at_version: int | None, as_of: datetime | None) -> Snapshot | None:
        try:
            snapshot = self._find_snapshot(aggregate.stream_id, at_version, as_of)
        except StoreError:
            raise  # the backend failing is not a bad snapshot: let the caller see it
        except EventSourcingError as exc:
            log.warning("ignoring unreadable snapshot of %s: %s", aggregate.stream_id, exc)
            self.stats.snapshots_ignored += 1
            return None
        if snapshot is None:
            return None
        cls = self.aggregate_cls
        if snapshot.state_type != cls.aggregate_type or snapshot.state_schema_version != cls.state_schema_version:
            log.info(
                "ignoring snapshot of %s at v%d: state %s v%d, code expects %s v%d",
                aggregate.stream_id, snapshot.version, snapshot.state_type, snapshot.state_schema_version,
                cls.aggregate_type, cls.state_schema_version,
            )
            self.stats.snapshots_ignored += 1
            return None
        try:
            aggregate.restore_state(snapshot.state)  # decode now, so a corrupt one falls back
        except SnapshotError as exc:
            log.warning("ignoring corrupt snapshot of %s at v%d: %s", aggregate.stream_id, snapshot.version, exc)
            self.stats.snapshots_ignored += 1
            aggregate.state = cls.State()
            return None
        return snapshot

    def _find_snapshot(self, stream_id: str, at_version: int | None, as_of: datetime | None) -> Snapshot | None:
        if as_of is None:
            return self.store.latest_snapshot(stream_id, upto=at_version)
        for version in self.store.snapshot_versions(stream_id):
            snapshot = self.store.latest_snapshot(stream_id, upto=version)
            if snapshot is not None and snapshot.taken_at <= as_of:
                return snapshot
        return None

    # -- saving --------------------------------------------------------------------------

    def save(
        self,
        aggregate: A,
        *,
        request_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        With a ``request_id``, event ids derive from it, so re-sending the same request after a
        lost reply is recognised by the store as a retry and writes nothing twice."""
        stream_id, prepare = aggregate.stream_id, self.registry.prepare
        if request_id is None:
            encoded = encode_metadata(metadata) if metadata else NO_METADATA  # once for the batch
            new_events = [prepare(event, metadata=encoded) for event in aggregate.pending]
        else:
            meta = dict(metadata) if metadata else {}
            meta.setdefault("request_id", request_id)
            encoded = encode_metadata(meta)
            new_events = [
                prepare(event, event_id=event_id_from(request_id, stream_id, i), metadata=encoded)
                for i, event in enumerate(aggregate.pending)
            ]
        try:
            result = self.store.append_prepared(stream_id, new_events, aggregate.version)
        except (ConcurrencyError, StoreError):
            self._cache.pop(stream_id, None)
            raise
        aggregate.version = result.last_version
        aggregate.pending = []
        if result.duplicate:
            # a retry of an append that landed earlier: this in-memory aggregate may have been
            # re-decided on stale state, so it must not become a snapshot or a cache entry
            self._cache.pop(stream_id, None)
            return result
        state = self._maybe_snapshot(aggregate, result) if new_events and self.snapshot_policy.enabled else None
        if self.cache_size:
            self._remember(aggregate, state)
        return result

    def _remember(self, aggregate: A, state: bytes | None = None) -> None:
        """Cache the aggregate's encoded state (``state``: encoded already, by a snapshot)."""
        state = state if state is not None else aggregate.snapshot_state()
        self._cache[aggregate.stream_id] = (aggregate.version, aggregate.snapshot_version, state)
        self._cache.move_to_end(aggregate.stream_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self, aggregate_id: str | None = None) -> None:
        """Drop one aggregate (or all) from the cache."""
        if aggregate_id is None:
            self._cache.clear()
        else:
            self._cache.pop(self.aggregate_cls.stream_id_for(aggregate_id), None)

    def _maybe_snapshot(self, aggregate: A, result: AppendResult) -> bytes | None:
        """Snapshot the aggregate if the policy says so; returns the state it encoded, if any."""
        policy = self.snapshot_policy
        if not policy.should_snapshot(aggregate.version, aggregate.snapshot_version, aggregate.replayed_on_load):
            return None
        state = aggregate.snapshot_state()
        stream_id = aggregate.stream_id
        snapshot = Snapshot(
            stream_id=stream_id,
            version=aggregate.version,
            state_type=self.aggregate_cls.aggregate_type,
            state_schema_version=self.aggregate_cls.state_schema_version,
            state=state,
            taken_at=result.recorded_at or self.store.clock(),  # the moment of the last event it covers
        )
        try:
            self.store.save_snapshot_and_prune(snapshot, policy.keep)
        except EventSourcingError as exc:
            # the events are committed; a missing snapshot only costs a longer replay later
            log.warning("snapshot of %s at v%d not saved: %s", stream_id, aggregate.version, exc)
            self.stats.snapshot_failures += 1
            return state
        aggregate.snapshot_version = aggregate.version
        aggregate.replayed_on_load = 0
        self.stats.snapshots_saved += 1
        return state


class _SnapshotAhead(Exception):
    """Internal: the snapshot covers versions the stream does not have."""


def _first_jump(version: int, rows: list[PayloadRow]) -> int:
    """The first row's version that does not follow the one before it."""
    for row in rows:
        if row[0] != version + 1:
            return row[0]
        version = row[0]
    raise AssertionError("the rows follow on from the version")


def _gap(aggregate: Aggregate[Any], version: int) -> StoreCorruptionError:
    return StoreCorruptionError(
        f"{aggregate.stream_id!r} jumps from version {aggregate.version} to {version}: an event is missing"
    )
