"""Apache Cassandra (5.0) backend: ``cassandra://host[,host...][:port]/keyspace?option=value&...``.

Layout (the CQL is in ``cassandra_schema``; the whole story in ``docs/cassandra.md``):

* ``events``, partitioned by ``(stream_id, bucket)`` and clustered by ``version``. An append
  lands whole in the partition of its **first** new version, ``bucket = (first - 1) // width``,
  so it is one single-partition conditional write; a batch that crosses a bucket boundary
  overflows its partition by fewer than ``MAX_EVENTS_PER_APPEND`` rows. Static columns hold the
  partition's head (version, first event id and last position of its latest append) and the
  feed's fence.
* ``snapshots``, one partition per stream, newest first, written on their own.
* ``feed_partitions`` (with ``feed_slots``, ``feed_eras``, ``feed_writers``): the global feed's
  index, see ``cassandra_feed``.

The concurrency check of an append expecting version ``x`` (the stream is at ``x`` exactly when
the partition ``x // width`` has head ``x``, or, while that partition is still empty, when ``x``
is the head of an earlier partition, which is then closed for good):

* usually one conditional ``UPDATE`` of the first new row, ``IF head = x AND head_id != <first
  id> AND head_position < <first position> AND fence < <first position> AND event_id = null``
  (the last is the row's ``IF NOT EXISTS``), which also sets the head; further rows of the
  append join it as ``INSERT ... IF NOT EXISTS`` in a single-partition conditional batch;
* the first append into a partition reads the partition holding version ``x`` and checks its
  head is ``x``, then writes ``IF head = null AND fence = <fence> AND event_id = null``. Racing
  writers of the same first version meet on the same row.

A refused write returns the partition's statics and the event id at the wanted version, so the
store tells a retry (the same event ids already there) from a conflict, and raises
``ConcurrencyError`` (like SQLite) for a conflict.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.concurrent import execute_concurrent
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, tuple_factory

from ..errors import (
    ConcurrencyError,
    InvalidEventError,
    InvalidStoreUrlError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ..events import AppendResult, Expect, ExpectedVersion, RecordedEvent, Snapshot
from ..limits import MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES, PreparedEvent, check_stream_id
from .base import Clock, EventStore, check_expected, match_retry
from .base import micros as _micros
from .base import moment as _moment
from .cassandra_config import OPTIONS, check_levels, default_consistency, parse_url, security
from .cassandra_errors import TRANSLATED
from .cassandra_feed import Feed, FeedStatus, LeaseExpired
from .cassandra_schema import (
    DEFAULT_BUCKET_WIDTH,
    EVENT_COLUMNS,
    MIN_BUCKET_WIDTH,
    check_keyspace,
    create_schema,
    drop_keyspace,
    missing_objects,
    refuse_expiring_tables,
    schema_cql,
)


class _QuietNegotiation(logging.Filter):
    """The driver logs a warning each time it negotiates the protocol version down (5 on
    Cassandra 5.0, 4 on ScyllaDB); negotiating is the intended behaviour, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Downgrading core protocol version")


logging.getLogger("cassandra.cluster").addFilter(_QuietNegotiation())

_decode = msgspec.json.decode
_MAX_VERSION = (1 << 62) - 1
_MAX_LIMIT = (1 << 31) - 1
_ATTEMPTS = 8  # fresh positions per append (lease overrun, clock skew, fencing): all rare

# -- statements ({ks} is the keyspace) ------------------------------------------------------------

_STATICS = (
    "SELECT DISTINCT stream_id, bucket, head, head_id, head_position, fence FROM {ks}.events"
    " WHERE stream_id = ? AND bucket IN ?"
)
_ROW = (
    "event_id = ?, event_type = ?, schema_version = ?, data = ?, metadata = ?, recorded_at = ?, position = ?"
    " WHERE stream_id = ? AND bucket = ? AND version = ?"
)
# The first new row and the partition's head in one conditional statement: the head conditions
# prove the stream is at the expected version (and refuse retries of its latest append, clocks
# behind the stream's last position and fenced positions); `event_id = null` is the row's
# IF NOT EXISTS. An append of one event is this statement alone.
_FIRST_ROW_NEXT = (
    "UPDATE {ks}.events SET head = ?, head_id = ?, head_position = ?, "
    + _ROW
    + " IF head = ? AND head_id != ? AND head_position < ? AND fence < ? AND event_id = null"
)
_FIRST_ROW_FIRST = (  # a partition's first append also starts its fence (null only before any append)
    "UPDATE {ks}.events SET head = ?, head_id = ?, head_position = ?, fence = ?, "
    + _ROW
    + " IF head = null AND fence = ? AND event_id = null"
)
_INSERT_EVENT = (
    "INSERT INTO {ks}.events (stream_id, bucket, version, event_id, event_type, schema_version, data, metadata,"
    " recorded_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
)
_RANGE = " FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version > ? AND version <= ?"
_SELECT_ROWS = "SELECT " + EVENT_COLUMNS + _RANGE + " LIMIT ?"
_SELECT_ROWS_DESC = "SELECT " + EVENT_COLUMNS + _RANGE + " ORDER BY version DESC LIMIT ?"
_SELECT_PAYLOADS = "SELECT version, event_type, schema_version, data, head" + _RANGE
_SELECT_FROM = "SELECT " + EVENT_COLUMNS + " FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version >= ?"
_SELECT_BY_ID = (
    "SELECT version, position, recorded_at FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND event_id = ?"
)


class _Statics(NamedTuple):
    head: int | None
    head_id: Any
    head_position: int | None
    fence: int | None


class _Found(NamedTuple):
    version: int
    position: int
    recorded_at: int


class _Restart(Exception):
    """Start the append again with fresh positions."""


class _Moved(Exception):
    """The stream moved between reading its version and writing (only ANY/STREAM_EXISTS retry)."""



# -- the store --------------------------------------------------------------------------------------


class CassandraStore(EventStore):
    """An event store on Apache Cassandra 5.0. Thread-safe; one driver ``Cluster`` per handle."""

    scheme = "cassandra"

    MAX_BATCH_BYTES = 4 * 1024 * 1024
    """Encoded payloads of one append: a conditional batch is one mutation, and Cassandra
    refuses a mutation over half a commit-log segment (8 MiB with 16 MiB segments)."""

    def __init__(
        self,
        hosts: tuple[str, ...] | list[str] | str = ("127.0.0.1",),
        keyspace: str = "es_events",
        *,
        port: int = 9042,
        replication_factor: int = 3,
        datacenter: str | None = None,
        consistency: str | None = None,
        serial_consistency: str = "LOCAL_SERIAL",
        bucket_width: int | None = None,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        clock_skew_ms: int = 100,
        feed_lease_ms: int = 1000,
        create: bool = True,
        username: str | None = None,
        password: str | None = None,
        tls: bool | None = None,
        tls_ca: str | None = None,
        tls_verify: str = "full",
        clock: Clock | None = None,
        payload_limit: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        super().__init__(clock=clock, payload_limit=payload_limit)
        self.hosts = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        self.keyspace = check_keyspace(keyspace)
        self.port = int(port)
        if replication_factor < 1:
            raise InvalidStoreUrlError(f"replication_factor must be >= 1, not {replication_factor}")
        if bucket_width is not None and bucket_width < MIN_BUCKET_WIDTH:
            raise InvalidStoreUrlError(f"bucket_width must be >= {MIN_BUCKET_WIDTH}, not {bucket_width}")
        if connect_timeout <= 0 or request_timeout <= 0 or clock_skew_ms < 0 or feed_lease_ms <= 0:
            raise InvalidStoreUrlError("timeouts and the feed lease must be > 0, the clock skew >= 0")
        self.replication_factor = replication_factor
        self.datacenter = datacenter
        levels = check_levels(consistency, serial_consistency, datacenter)
        self.consistency, self.serial_consistency = levels
        self._cl, self._serial_cl = levels.codes
        secure = security(username, password, tls, tls_ca, tls_verify)
        self.tls, self.tls_ca, self.tls_verify = secure["ssl_context"] is not None, tls_ca, str(tls_verify).lower()
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.clock_skew_ms = clock_skew_ms
        self.feed_lease_ms = feed_lease_ms
        self._requested_width = bucket_width
        self._create = create
        self._closed = False
        self._lock = threading.Lock()
        self._prepared: dict[str, Any] = {}
        self._tails: dict[str, int] = {}  # stream -> a bucket known to hold its events (a lower bound)
        self._fences: dict[tuple[str, int], int | None] = {}
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=datacenter)),
            consistency_level=self._cl,
            serial_consistency_level=self._serial_cl,
            request_timeout=request_timeout,
            row_factory=tuple_factory,
        )
        with TRANSLATED:
            self.cluster = Cluster(
                contact_points=list(self.hosts),
                port=self.port,
                execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                connect_timeout=connect_timeout,
                control_connection_timeout=max(connect_timeout, 2.0),
                max_schema_agreement_wait=60,
                **secure,
            )
            try:
                session = self.cluster.connect()
                self._ensure_schema(session)
                session.set_keyspace(self.keyspace)  # for tools handed ``session``; statements are qualified
                self.session = session
                self.bucket_width = self._settle_bucket_width()
            except BaseException:
                self.cluster.shutdown()
                raise
        self._feed = Feed(
            self.session,
            self._q,
            _SELECT_FROM,
            lease_us=feed_lease_ms * 1000,
            skew_us=clock_skew_ms * 1000,
            request_timeout=request_timeout,
        )

    @classmethod
    def from_url(cls, url: str, *, clock: Clock | None = None, **options: Any) -> CassandraStore:
        parsed = parse_url(url)
        unknown = set(options) - set(OPTIONS) - {"payload_limit", "hosts", "port", "keyspace", "username", "password"}
        if unknown:
            raise InvalidStoreUrlError(f"unknown CassandraStore options: {', '.join(sorted(unknown))}")
        return cls(**{**parsed, **options}, clock=clock)

    @classmethod
    def create(cls, url: str) -> None:
        """Create the keyspace and tables the URL names (idempotent), then disconnect."""
        cls.from_url(url, create=True).close()

    @classmethod
    def drop(cls, url: str) -> None:
        """Drop the URL's keyspace and everything in it (for tests and scratch notebooks)."""
        parsed = parse_url(url)
        with TRANSLATED:
            cluster = Cluster(
                contact_points=list(parsed["hosts"]),
                port=parsed.get("port", 9042),
                connect_timeout=parsed.get("connect_timeout", 5.0),
                **security(**parsed),
            )
            try:
                drop_keyspace(cluster.connect(), parsed["keyspace"])
            finally:
                cluster.shutdown()

    @property
    def url(self) -> str:  # type: ignore[override]
        """A URL that reopens this store: same nodes, keyspace and settings. It never holds
        credentials: reopen with them in the environment, or add them again."""
        netloc = ",".join(f"[{h}]" if ":" in h else h for h in self.hosts) + f":{self.port}"
        query = {"replication_factor": self.replication_factor, "bucket_width": self.bucket_width}
        derived = default_consistency(self.serial_consistency)
        for key, value in (
            ("datacenter", self.datacenter),
            ("consistency", None if self.consistency == derived else self.consistency),
            ("serial_consistency", self.serial_consistency),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("clock_skew_ms", self.clock_skew_ms),
            ("feed_lease_ms", self.feed_lease_ms),
            ("tls", self.tls),
            ("tls_ca", self.tls_ca),
            ("tls_verify", self.tls_verify if self.tls else "full"),
        ):
            if value != OPTIONS[key][1]:
                query[key] = value
        if not self._create:
            query["create"] = False
        text = "&".join(f"{k}={quote(_text(v), safe='')}" for k, v in query.items())
        return f"cassandra://{netloc}/{self.keyspace}?{text}"

    def __repr__(self) -> str:
        return f"CassandraStore({self.url!r})"

    # -- set-up ---------------------------------------------------------------------------------

    def _ensure_schema(self, session: Any) -> None:
        missing = missing_objects(session, self.keyspace)
        if missing:
            if not self._create:
                raise StoreError(
                    f"keyspace {self.keyspace!r} lacks {', '.join(missing)}; create it with create=true "
                    "or CassandraStore.create(url)"
                )
            create_schema(session, self.keyspace, self.replication_factor, self.datacenter)
        refuse_expiring_tables(session, self.keyspace)

    def _settle_bucket_width(self) -> int:
        """The keyspace's bucket width is fixed by its first user: every handle must agree."""
        row = self.session.execute(self._q("SELECT value FROM {ks}.store_settings WHERE name = 'bucket_width'")).one()
        if row is None:
            wanted = self._requested_width or DEFAULT_BUCKET_WIDTH
            result = self.session.execute(
                self._q("INSERT INTO {ks}.store_settings (name, value) VALUES ('bucket_width', ?) IF NOT EXISTS"),
                (wanted,),
            )
            stored = (
                wanted
                if result.was_applied
                else int(dict(zip(result.column_names, result.one(), strict=True))["value"])
            )
        else:
            stored = int(row[0])
        if self._requested_width is not None and self._requested_width != stored:
            raise InvalidStoreUrlError(
                f"keyspace {self.keyspace!r} uses bucket_width={stored}, not {self._requested_width}"
            )
        return stored

    def _q(self, cql: str) -> Any:
        """The prepared form of ``cql`` (prepared once per handle, on first use)."""
        statement = self._prepared.get(cql)
        if statement is None:
            with self._lock:
                statement = self._prepared.get(cql)
                if statement is None:
                    statement = self.session.prepare(cql.format(ks=self.keyspace))
                    self._prepared[cql] = statement
        return statement

    def _live(self) -> Any:
        if self._closed:
            raise StoreError("the store is closed")
        return self.session

    # -- partitions -------------------------------------------------------------------------------

    def _statics(self, stream_id: str, buckets: list[int]) -> dict[int, _Statics]:
        """Static columns of the stream's partitions among ``buckets`` that hold any events."""
        rows = self._live().execute(self._q(_STATICS), (stream_id, buckets))
        return {r[1]: _Statics(r[2], r[3], r[4], r[5]) for r in rows if r[2] is not None}

    def _locate(self, stream_id: str, version: int) -> tuple[int, _Statics] | None:
        """The partition holding ``version``: the lowest with head >= version among the buckets
        an append containing it can have started in. None if the stream is not that long."""
        width = self.bucket_width
        lowest = max(0, version - MAX_EVENTS_PER_APPEND) // width
        found = self._statics(stream_id, list(range(lowest, (version - 1) // width + 1)))
        holders = [b for b, s in found.items() if s.head is not None and s.head >= version]
        return (min(holders), found[min(holders)]) if holders else None

    def _chain(self, stream_id: str, start: int = 0, upto: int | None = None) -> list[tuple[int, _Statics]]:
        """The stream's partitions from ``start``, in order: each one's head names the bucket of
        the next append, so the partitions form a chain (``upto``: stop at the one holding it)."""
        chain: list[tuple[int, _Statics]] = []
        bucket: int | None = start
        while bucket is not None:
            statics = self._statics(stream_id, [bucket]).get(bucket)
            if statics is None or statics.head is None:
                break
            chain.append((bucket, statics))
            following = statics.head // self.bucket_width
            if following == bucket or (upto is not None and statics.head >= upto):
                break
            bucket = following
        return chain

    def _tail(self, stream_id: str) -> int:
        """The stream's version, following the chain from the last partition this handle saw."""
        hint = self._tails.get(stream_id, 0)
        chain = self._chain(stream_id, hint)
        if not chain and hint:
            chain = self._chain(stream_id, 0)
        if not chain:
            return 0
        bucket, statics = chain[-1]
        self._remember_tail(stream_id, bucket)
        return int(statics.head or 0)

    def _remember_tail(self, stream_id: str, bucket: int) -> None:
        if bucket:
            if len(self._tails) > 100_000:
                self._tails.clear()
            self._tails[stream_id] = bucket

    # -- writing ----------------------------------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        with TRANSLATED:
            self._live()
            if not events:
                current = self._tail(stream_id)
                conflict = check_expected(stream_id, expected, current)
                if conflict:
                    raise conflict
                return AppendResult(stream_id=stream_id, first_version=current + 1, last_version=current)
            size = sum(len(e.data) + len(e.metadata) for e in events)
            if size > self.MAX_BATCH_BYTES:
                raise InvalidEventError(
                    f"the append's payloads total {size} bytes, over the {self.MAX_BATCH_BYTES} bytes one "
                    "Cassandra batch takes; append in smaller batches"
                )
            try:
                if expected is Expect.ANY or expected is Expect.STREAM_EXISTS:
                    return self._append_any(stream_id, events, expected, recorded_at)
                at = 0 if expected is Expect.NO_STREAM else int(expected)
                return self._append_at(stream_id, events, at, expected, recorded_at)
            except _Answer as answer:
                return answer.result

    def _append_any(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        # Without an expected version nothing else would refuse a retry, so look for the ids
        # first (the index covers the whole stream).
        found = self._find_ids(stream_id, events)
        if found:
            return self._duplicate(stream_id, events, found)
        for _ in range(100):
            current = self._tail(stream_id)
            conflict = check_expected(stream_id, expected, current)  # only STREAM_EXISTS can refuse here
            if conflict:
                raise conflict
            try:
                return self._append_at(stream_id, events, current, expected, recorded_at, any_mode=True)
            except _Moved:
                continue
        raise StoreUnavailableError(f"stream {stream_id!r} kept moving; no append landed after 100 tries")

    def _append_at(
        self,
        stream_id: str,
        events: list[PreparedEvent],
        at: int,
        expected: ExpectedVersion,
        recorded_at: datetime,
        *,
        any_mode: bool = False,
    ) -> AppendResult:
        bucket = at // self.bucket_width
        # version `at` ends the previous bucket (or the stream is new): the target is likely empty
        first_path = at % self.bucket_width == 0
        for _ in range(_ATTEMPTS):
            positions = self._feed.allocate(len(events))
            try:
                self._feed.announce(stream_id, bucket, positions, at + 1)
                return self._conditional_batch(
                    stream_id, events, at, expected, recorded_at, bucket, positions, first_path, any_mode
                )
            except (LeaseExpired, _Restart):
                continue
        raise StoreUnavailableError(
            f"no append to {stream_id!r} placed in {_ATTEMPTS} attempts (clock skew, fencing or a slow cluster)"
        )

    def _conditional_batch(
        self,
        stream_id: str,
        events: list[PreparedEvent],
        at: int,
        expected: ExpectedVersion,
        recorded_at: datetime,
        bucket: int,
        positions: list[int],
        first_path: bool,
        any_mode: bool,
    ) -> AppendResult:
        n, first_id, key, p0 = len(events), events[0].event_id, (stream_id, bucket), positions[0]
        micros = _micros(recorded_at)
        insert = self._q(_INSERT_EVENT)
        checked = False  # the partition holding `at` is closed: checking it once per attempt suffices
        for _ in range(16):
            fence = self._fences.get(key)  # only a partition's first append needs the exact value
            if first_path and at > 0 and not checked:
                self._check_previous(stream_id, events, at, expected, positions, any_mode)
                checked = True
            if first_path and fence is not None and fence >= p0:
                self._feed.bump(fence)
                raise _Restart
            e = events[0]
            row = (
                e.event_id,
                e.event_type,
                e.schema_version,
                e.data,
                e.metadata,
                micros,
                p0,
                stream_id,
                bucket,
                at + 1,
            )
            if first_path:
                values = (at + n, first_id, positions[-1], fence or 0, *row, fence)
                statement: Any = self._q(_FIRST_ROW_FIRST).bind(values)
            else:
                values = (at + n, first_id, positions[-1], *row, at, first_id, p0, p0)
                statement = self._q(_FIRST_ROW_NEXT).bind(values)
            if n > 1:  # the other rows join it in one single-partition conditional batch
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                batch.add(statement)
                for i, e in enumerate(events[1:], start=1):
                    batch.add(insert, (
                        stream_id, bucket, at + 1 + i, e.event_id, e.event_type, e.schema_version, e.data,
                        e.metadata, micros, positions[i],
                    ))  # fmt: skip
                statement = batch
            result = self._live().execute(statement)
            if result.was_applied:
                self._remember_tail(stream_id, bucket)
                return AppendResult(
                    stream_id=stream_id, first_version=at + 1, last_version=at + n,
                    last_position=positions[-1], recorded_at=recorded_at,
                )  # fmt: skip
            rows = [dict(zip(result.column_names, row, strict=True)) for row in result.current_rows]
            state = rows[0]
            head, current_fence = state.get("head"), state.get("fence")
            if first_path:
                if head is None and current_fence != fence:  # a reader fenced the empty partition
                    self._remember_fence(key, current_fence)
                    continue
                if head is None:
                    raise StoreCorruptionError(f"{stream_id!r}: rows exist in partition {bucket} without a head")
            elif head is None:  # the partition is empty: version `at` sits in an earlier one
                first_path = True
                self._remember_fence(key, current_fence)
                continue
            elif head == at:
                if state.get("head_id") == first_id:  # a retry of the stream's latest append
                    return self._duplicate(stream_id, events, self._read_ids(stream_id, bucket, at - n, at))
                if current_fence is not None and current_fence >= p0:
                    self._feed.bump(current_fence)
                    raise _Restart  # a reader settled past these positions: take new ones
                if (state.get("head_position") or 0) >= p0:
                    self._feed.bump(state["head_position"])  # this clock is behind the stream's last writer's
                    raise _Restart
                raise StoreCorruptionError(f"{stream_id!r}: a conditional batch was refused for no reason")
            return self._refused(stream_id, events, at, expected, bucket, rows, any_mode)
        raise StoreUnavailableError(f"{stream_id!r}: the partition's fence kept changing")

    def _remember_fence(self, key: tuple[str, int], fence: int | None) -> None:
        if len(self._fences) > 100_000:
            self._fences.clear()
        self._fences[key] = fence

    def _check_previous(
        self,
        stream_id: str,
        events: list[PreparedEvent],
        at: int,
        expected: ExpectedVersion,
        positions: list[int],
        any_mode: bool,
    ) -> None:
        """Before the first append into a partition: version ``at`` must be the head of the
        partition that holds it (a closed partition, so the answer cannot change)."""
        located = self._locate(stream_id, at)
        if located is None or located[1].head != at:
            raise self._conflict(stream_id, events, expected, any_mode)
        holder, statics = located
        if statics.head_id == events[0].event_id:
            raise _Answer(self._duplicate(stream_id, events, self._read_ids(stream_id, holder, at - len(events), at)))
        if (statics.head_position or 0) >= positions[0]:
            self._feed.bump(statics.head_position or 0)
            raise _Restart

    def _refused(
        self,
        stream_id: str,
        events: list[PreparedEvent],
        at: int,
        expected: ExpectedVersion,
        bucket: int,
        rows: list[dict[str, Any]],
        any_mode: bool,
    ) -> AppendResult:
        """The stream is not at ``at``: a retry of an append that landed, or a conflict. The
        refused statement returned what sits at the wanted versions; the batch's first id there
        means a retry with the same expected version."""
        if any(r.get("event_id") == events[0].event_id for r in rows):
            return self._duplicate(stream_id, events, self._read_ids(stream_id, bucket, at, at + len(events)))
        raise self._conflict(stream_id, events, expected, any_mode)

    def _conflict(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, any_mode: bool
    ) -> Exception:
        """The error for a refused append: a retry found elsewhere in the stream (answered via
        ``_Answer``), ``_Moved`` for ANY, else ``ConcurrencyError`` with the stream's version."""
        if self._find_ids(stream_id, events[:1]):
            return _Answer(self._duplicate(stream_id, events, self._find_ids(stream_id, events)))
        if any_mode:
            return _Moved()
        return ConcurrencyError(stream_id, expected, self._tail(stream_id))

    def _read_ids(self, stream_id: str, bucket: int, after: int, upto: int) -> dict[Any, _Found]:
        rows = self._live().execute(self._q(_SELECT_ROWS), (stream_id, bucket, after, upto, _MAX_LIMIT))
        return {r[1]: _Found(r[0], r[7], r[6]) for r in rows if r[0] is not None}

    def _find_ids(self, stream_id: str, events: list[PreparedEvent]) -> dict[Any, _Found]:
        """Where the events' ids are stored in the stream (through the event id index)."""
        buckets = [b for b, _ in self._chain(stream_id)]
        if not buckets:
            return {}
        statement = self._q(_SELECT_BY_ID)
        calls = [(statement, (stream_id, b, e.event_id)) for e in events for b in buckets]
        found: dict[Any, _Found] = {}
        results = execute_concurrent(self._live(), calls, concurrency=32, raise_on_first_error=True)
        for (_, (_, _, event_id)), (_, rows) in zip(calls, results, strict=True):
            for version, position, recorded_at in rows:
                found[event_id] = _Found(version, position, recorded_at)
        return found

    def _duplicate(self, stream_id: str, events: list[PreparedEvent], found: dict[Any, _Found]) -> AppendResult:
        stored = [(e.event_id, stream_id, found[e.event_id].version) for e in events if e.event_id in found]
        if not stored:
            raise StoreCorruptionError(f"{stream_id!r}: a retry's events vanished while being read")
        result = match_retry(stream_id, events, stored)
        last = found[events[-1].event_id]
        return msgspec.structs.replace(result, last_position=last.position, recorded_at=_moment(last.recorded_at))

    # -- reading ----------------------------------------------------------------------------------

    def _rows(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool, payloads: bool = False
    ) -> list[tuple[Any, ...]]:
        high = _MAX_VERSION if upto is None else upto
        want = _MAX_LIMIT if limit is None else limit
        session = self._live()
        select, head_at = (self._q(_SELECT_PAYLOADS), 4) if payloads else (self._q(_SELECT_ROWS), 8)

        def fetch(bucket: int, got: int) -> list[tuple[Any, ...]]:
            values = (stream_id, bucket, after, high) if payloads else (stream_id, bucket, after, high, want - got)
            return list(session.execute(select, values))

        start, first_rows = 0, None
        if after:
            # usually version after+1 sits in its own bucket: one read finds it (a load after a
            # snapshot is then two round trips); otherwise the heads say where it overflowed to
            nominal = after // self.bucket_width
            first_rows = None if reverse else fetch(nominal, 0)
            if first_rows and first_rows[0][0] == after + 1:
                start = nominal
            else:
                located = self._locate(stream_id, after + 1)
                if located is None:
                    return []
                start = located[0]
                if start != nominal:
                    first_rows = None
        out: list[tuple[Any, ...]] = []
        if reverse:
            for bucket, _ in reversed(self._chain(stream_id, start, upto=high)):
                rows = session.execute(self._q(_SELECT_ROWS_DESC), (stream_id, bucket, after, high, want - len(out)))
                out.extend(r for r in rows if r[0] is not None)
                if len(out) >= want:
                    break
            return out
        bucket: int | None = start
        last = start
        while bucket is not None:
            last = bucket
            rows = first_rows if first_rows is not None and bucket == start else fetch(bucket, len(out))
            if rows:
                head = rows[-1][head_at]
                out.extend(r for r in rows if r[0] is not None)
            else:  # nothing after `after` here (or truncated): the statics still name the next partition
                statics = self._statics(stream_id, [bucket]).get(bucket)
                head = statics.head if statics else None
            if head is None or head >= high or len(out) >= want:
                break
            following = head // self.bucket_width
            bucket = following if following != bucket else None
        self._remember_tail(stream_id, last)
        return out

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[RecordedEvent]:
        with TRANSLATED:
            rows = self._rows(stream_id, after, upto, limit, reverse)
        return [_record(stream_id, r) for r in rows]

    def read_stream_payloads(
        self, stream_id: str, *, after: int = 0, upto: int | None = None
    ) -> list[tuple[int, str, int, bytes]]:
        """(version, event type, schema version, JSON data) of the stream's events with
        ``after < version <= upto``, payloads left encoded: the repository's replay fast path."""
        stream_id = check_stream_id(stream_id)
        if upto is not None and upto <= after:
            return []
        with TRANSLATED:
            rows = self._rows(stream_id, after, upto, None, False, payloads=True)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _stream_version(self, stream_id: str) -> int:
        with TRANSLATED:
            self._live()
            return self._tail(stream_id)

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[RecordedEvent]:
        with TRANSLATED:
            self._live()
            slots = self._feed.read(after)
        produced = 0
        while limit is None or produced < limit:
            with TRANSLATED:
                rows = next(slots, None)
            if rows is None:
                return
            for stream_id, row in rows:
                if limit is not None and produced >= limit:
                    return
                produced += 1
                yield _record(stream_id, row)

    def head_position(self) -> int:
        with TRANSLATED:
            self._live()
            return self._feed.head()

    def settled_position(self, *, wait: bool = True) -> int:
        """The position up to which no earlier event can still appear (see ``cassandra_feed``).
        With ``wait`` (the default), first waits until the newest event is older than the feed
        lease plus the clock-skew allowance (at most ~1.1 s by default), so the result reaches
        the head when no append is under way; then fences the partitions written since the
        last settled position (one conditional write each, shared by every reader)."""
        with TRANSLATED:
            self._live()
            return self._feed.settle(wait=wait)

    def feed_status(self) -> FeedStatus:
        """Settled and head positions, lag, unsettled partitions and holes, reported apart
        (without settling anything: ``settled_position`` does that)."""
        with TRANSLATED:
            self._live()
            return self._feed.status()

    def schema_census(self) -> dict[tuple[str, int], int]:
        """A full scan of the events table (cost grows with the store; paged, 5,000 rows a page)."""
        counts: Counter[tuple[str, int]] = Counter()
        with TRANSLATED:
            statement = self._q("SELECT event_type, schema_version FROM {ks}.events").bind(())
            statement.fetch_size = 5000
            for event_type, schema_version in self._live().execute(statement):
                if event_type is not None:  # a partition whose rows were truncated keeps its statics
                    counts[(event_type, schema_version)] += 1
        return dict(counts)

    # -- snapshots --------------------------------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        with TRANSLATED:
            self._live().execute(
                self._q(
                    "INSERT INTO {ks}.snapshots (stream_id, version, state_type, state_schema_version, state, taken_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (
                    snapshot.stream_id,
                    snapshot.version,
                    snapshot.state_type,
                    snapshot.state_schema_version,
                    bytes(snapshot.state),
                    _micros(snapshot.taken_at),
                ),
            )

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        with TRANSLATED:
            row = (
                self._live()
                .execute(
                    self._q(
                        "SELECT version, state_type, state_schema_version, state, taken_at FROM {ks}.snapshots"
                        " WHERE stream_id = ? AND version <= ? LIMIT 1"
                    ),
                    (stream_id, _MAX_VERSION if upto is None else upto),
                )
                .one()
            )
        if row is None:
            return None
        return Snapshot(
            stream_id=stream_id,
            version=row[0],
            state_type=row[1],
            state_schema_version=row[2],
            state=bytes(row[3]),
            taken_at=_moment(row[4]),
        )

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        with TRANSLATED:
            rows = self._live().execute(self._q("SELECT version FROM {ks}.snapshots WHERE stream_id = ?"), (stream_id,))
            return [r[0] for r in rows]

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        with TRANSLATED:
            self._live().execute(
                self._q("DELETE FROM {ks}.snapshots WHERE stream_id = ? AND version IN ?"), (stream_id, versions)
            )

    # -- retention --------------------------------------------------------------------------------

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        with TRANSLATED:
            session = self._live()
            buckets = [b for b, _ in self._chain(stream_id, upto=before_version)]
            counting = self._q(
                "SELECT COUNT(version), MAX(WRITETIME(event_type)) FROM {ks}.events"
                " WHERE stream_id = ? AND bucket = ? AND version < ?"
            )
            counts = execute_concurrent(
                session, [(counting, (stream_id, b, before_version)) for b in buckets], raise_on_first_error=True
            )
            deletes, total = [], 0
            delete = self._q(
                "DELETE FROM {ks}.events USING TIMESTAMP ? WHERE stream_id = ? AND bucket = ? AND version < ?"
            )
            for bucket, (_, rows) in zip(buckets, counts, strict=True):
                count, written = rows.one()
                if count:
                    # conditional writes carry the coordinator's timestamps: delete after them
                    stamp = max(_micros(datetime.now(UTC)), (written or 0) + 1)
                    deletes.append((delete, (stamp, stream_id, bucket, before_version)))
                    total += count
            execute_concurrent(session, deletes, raise_on_first_error=True)
        return total

    # -- inspection -------------------------------------------------------------------------------

    def schema(self) -> dict[str, str]:
        """The CQL that creates this store's keyspace, tables and index, by name."""
        return schema_cql(self.keyspace, self.replication_factor, self.datacenter)

    def partitions(self, stream_id: str) -> list[dict[str, int]]:
        """One dict per partition of the stream: bucket, rows, first and last version, head."""
        stream_id = check_stream_id(stream_id)
        with TRANSLATED:
            chain = self._chain(stream_id)
            statement = self._q(
                "SELECT COUNT(version), MIN(version), MAX(version) FROM {ks}.events WHERE stream_id = ? AND bucket = ?"
            )
            results = execute_concurrent(
                self._live(), [(statement, (stream_id, b)) for b, _ in chain], raise_on_first_error=True
            )
            out = []
            for (bucket, statics), (_, rows) in zip(chain, results, strict=True):
                count, low, high = rows.one()
                out.append(
                    {
                        "bucket": bucket,
                        "rows": int(count),
                        "first_version": low,
                        "last_version": high,
                        "head": statics.head,
                    }
                )
        return out

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.cluster.shutdown()


class _Answer(Exception):
    """Carries a finished result out of a nested check (a recognised retry)."""

    def __init__(self, result: AppendResult) -> None:
        super().__init__()
        self.result = result


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _record(stream_id: str, row: tuple[Any, ...]) -> RecordedEvent:
    return RecordedEvent(
        stream_id=stream_id,
        version=row[0],
        position=row[7],
        event_id=row[1],
        event_type=row[2],
        schema_version=row[3],
        data=_decode(row[4]),
        metadata=_decode(row[5]),
        recorded_at=_moment(row[6]),
    )


__all__ = ["CassandraStore", "FeedStatus", "parse_url"]
