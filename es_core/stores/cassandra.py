"""Apache Cassandra (5.0) backend: ``cassandra://host[,host...][:port]/keyspace?option=value&...``.

The store facade: URL and options, connecting, the keyspace's fixed settings, and the public
methods, each delegating to a module by concern (the whole story in ``docs/cassandra.md``):

* ``cassandra_schema``: the tables (``events`` partitioned by ``(stream_id, bucket)``,
  ``snapshots``, the feed's tables) and creating them; ``cassandra_statements``: the CQL on events;
* ``cassandra_chain``: a stream's partitions and the chain their heads form;
* ``cassandra_append``: the append protocol (one single-partition conditional write per attempt);
* ``cassandra_read``: reading streams; ``cassandra_splits``: partitioned reads by token range;
  ``cassandra_snapshots``: snapshots;
* ``cassandra_feed`` (with ``cassandra_feed_writer``, ``cassandra_feed_reader``,
  ``cassandra_writers``, ``cassandra_clock``): the global feed, safe without trusting clocks;
* ``cassandra_errors``: driver exceptions become the project's ``StoreError`` tree at one boundary.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory

from ..errors import InvalidStoreUrlError, StoreError
from ..events import AppendResult, ExpectedVersion, PayloadRow, PreparedEvent, Snapshot, StoredEvent
from ..keys import KeyTable
from ..limits import MAX_PAYLOAD_BYTES
from ..splits import StoreSplit
from ..validation import check_stream_id
from .base import Clock, EventStore
from .cassandra_append import MAX_BATCH_BYTES, Appender
from .cassandra_chain import Chain
from .cassandra_clock import BoundedClock, ClusterClock
from .cassandra_config import OPTIONS, check_levels, default_consistency, parse_url, security
from .cassandra_errors import TRANSLATED
from .cassandra_feed import DEFAULT_FEED_SHARDS, MAX_FEED_SHARDS, FeedIndex, FeedStatus
from .cassandra_feed_reader import FeedReader
from .cassandra_feed_writer import FeedWriter
from .cassandra_keys import CassandraKeyTable
from .cassandra_read import stored, stream_rows
from .cassandra_schema import (
    DEFAULT_BUCKET_WIDTH,
    MIN_BUCKET_WIDTH,
    check_keyspace,
    create_schema,
    drop_keyspace,
    missing_objects,
    refuse_expiring_tables,
    schema_cql,
)
from .cassandra_snapshots import Snapshots
from .cassandra_splits import Splits
from .cassandra_upgrade import check_layout, mark_layout, upgrade_feed
from .cassandra_writers import WriterNumbers


class _QuietNegotiation(logging.Filter):
    """The driver logs a warning each time it negotiates the protocol version down (5 on
    Cassandra 5.0, 4 on ScyllaDB); negotiating is the intended behaviour, not a problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Downgrading core protocol version")


logging.getLogger("cassandra.cluster").addFilter(_QuietNegotiation())


def _cluster(
    hosts: tuple[str, ...],
    port: int,
    datacenter: str | None,
    consistency: int,
    serial_consistency: int,
    connect_timeout: float,
    request_timeout: float,
    secure: dict[str, Any],
) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=datacenter)),
        consistency_level=consistency,
        serial_consistency_level=serial_consistency,
        request_timeout=request_timeout,
        row_factory=tuple_factory,
    )
    return Cluster(
        contact_points=list(hosts),
        port=port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=connect_timeout,
        control_connection_timeout=max(connect_timeout, 2.0),
        max_schema_agreement_wait=60,
        **secure,  # the auth provider and TLS context (cassandra_config.security)
    )


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- the store --------------------------------------------------------------------------------------


class CassandraStore(EventStore):
    """An event store on Apache Cassandra 5.0. Thread-safe; one driver ``Cluster`` per handle.

    ``clock`` is the handle's one clock, as a host has one: it stamps ``recorded_at`` and gives
    the global feed its time (held within ``clock_skew_ms`` of the cluster's clock; see
    ``cassandra_clock``). Skew a handle with ``clock=lambda: datetime.now(UTC) + offset``."""

    scheme = "cassandra"

    MAX_BATCH_BYTES = MAX_BATCH_BYTES

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
        feed_shards: int | None = None,
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
        if feed_shards is not None and not 1 <= feed_shards <= MAX_FEED_SHARDS:
            raise InvalidStoreUrlError(f"feed_shards must be between 1 and {MAX_FEED_SHARDS}, not {feed_shards}")
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
        self._requested = {"bucket_width": bucket_width, "feed_shards": feed_shards}
        self._create = create
        self._closed = False
        self._lock = threading.Lock()
        self._prepared: dict[str, Any] = {}
        with TRANSLATED:
            self.cluster = _cluster(
                self.hosts, self.port, datacenter, self._cl, self._serial_cl, connect_timeout, request_timeout, secure
            )
            try:
                session = self.cluster.connect()
                self._ensure_schema(session)
                session.set_keyspace(self.keyspace)  # for tools handed ``session``; statements are qualified
                self.session = session
                self.bucket_width = self._fixed_setting("bucket_width", DEFAULT_BUCKET_WIDTH)
                self.feed_shards = self._fixed_setting("feed_shards", DEFAULT_FEED_SHARDS)
            except BaseException:
                self.cluster.shutdown()
                raise
        self._chain = Chain(self._live, self._q, self.bucket_width)
        self._snapshots = Snapshots(self._live, self._q)
        index = FeedIndex(self.session, self._q, self.feed_shards)
        clock_us = BoundedClock(self.clock, ClusterClock(self.session), clock_skew_ms * 1000)
        self._feed_writer = FeedWriter(index, WriterNumbers(self.session, self._q, clock_us.cluster), clock_us)
        self._feed_reader = FeedReader(index, self._q, clock_us, lease_us=feed_lease_ms * 1000)
        self._appender = Appender(self._live, self._q, self._chain, self._feed_writer)
        self._key_table: CassandraKeyTable | None = None
        self._splits = Splits(self._live, self._q, self._chain, self.cluster, self.keyspace)

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
        cls._with_session(url, lambda session, keyspace: drop_keyspace(session, keyspace))

    @classmethod
    def upgrade(cls, url: str, *, feed_shards: int | None = None) -> int:
        """Upgrade a keyspace written with the first feed layout to this version's (see
        ``cassandra_upgrade``); returns how many announcements were copied. Stop every handle
        of the earlier version first."""
        parsed = parse_url(url)
        shards = feed_shards or parsed.get("feed_shards") or DEFAULT_FEED_SHARDS
        return int(cls._with_session(url, lambda session, keyspace: upgrade_feed(session, keyspace, shards)))

    @staticmethod
    def _with_session(url: str, work: Any) -> Any:
        """Run ``work(session, keyspace)`` on a connection with the URL's settings (no keyspace set)."""
        options = {name: default for name, (_, default) in OPTIONS.items()} | parse_url(url)
        levels = check_levels(options["consistency"], options["serial_consistency"], options["datacenter"])
        with TRANSLATED:
            cluster = _cluster(
                options["hosts"],
                options.get("port", 9042),
                options["datacenter"],
                *levels.codes,
                options["connect_timeout"],
                120.0,  # schema changes and bulk copies
                security(**options),
            )
            try:
                return work(cluster.connect(), options["keyspace"])
            finally:
                cluster.shutdown()

    @property
    def url(self) -> str:  # type: ignore[override]  # a property where the base has a plain attribute
        """A URL that reopens this store: same nodes, keyspace and settings. It never holds
        credentials: reopen with them in the environment, or add them again."""
        netloc = ",".join(f"[{h}]" if ":" in h else h for h in self.hosts) + f":{self.port}"
        query: dict[str, Any] = {"replication_factor": self.replication_factor, "bucket_width": self.bucket_width}
        if self.feed_shards != DEFAULT_FEED_SHARDS:
            query["feed_shards"] = self.feed_shards
        derived = default_consistency(self.serial_consistency)
        for key, value in (
            ("datacenter", self.datacenter),
            ("consistency", None if self.consistency == derived else self.consistency),
            ("serial_consistency", self.serial_consistency),
            ("connect_timeout", self.connect_timeout),
            ("request_timeout", self.request_timeout),
            ("clock_skew_ms", self.clock_skew_ms),
            ("feed_lease_ms", self.feed_lease_ms),
            ("tls", True if self.tls else None),
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
        check_layout(session, self.keyspace)
        missing = missing_objects(session, self.keyspace)
        if missing:
            if not self._create:
                raise StoreError(
                    f"keyspace {self.keyspace!r} lacks {', '.join(missing)}; create it with create=true "
                    "or CassandraStore.create(url)"
                )
            create_schema(session, self.keyspace, self.replication_factor, self.datacenter)
        refuse_expiring_tables(session, self.keyspace)
        mark_layout(session, self.keyspace)

    def _fixed_setting(self, name: str, default: int) -> int:
        """A setting fixed by the keyspace's first user (bucket width, feed shards): every handle must agree."""
        requested = self._requested[name]
        row = self.session.execute(self._q("SELECT value FROM {ks}.store_settings WHERE name = ?"), (name,)).one()
        if row is None:
            wanted = requested or default
            result = self.session.execute(
                self._q("INSERT INTO {ks}.store_settings (name, value) VALUES (?, ?) IF NOT EXISTS"), (name, wanted)
            )
            stored = (
                wanted
                if result.was_applied
                else int(dict(zip(result.column_names, result.one(), strict=True))["value"])
            )
        else:
            stored = int(row[0])
        if requested is not None and requested != stored:
            raise InvalidStoreUrlError(f"keyspace {self.keyspace!r} uses {name}={stored}, not {requested}")
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

    # -- writing ----------------------------------------------------------------------------------

    def _append(
        self, stream_id: str, events: list[PreparedEvent], expected: ExpectedVersion, recorded_at: datetime
    ) -> AppendResult:
        with TRANSLATED:
            self._live()
            return self._appender.append(stream_id, events, expected, recorded_at)

    # -- reading ----------------------------------------------------------------------------------

    def _rows(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool, payloads: bool = False
    ) -> list[tuple[Any, ...]]:
        return stream_rows(self._chain, self._live(), self._q, stream_id, after, upto, limit, reverse, payloads)

    def _read_stream(
        self, stream_id: str, after: int, upto: int | None, limit: int | None, reverse: bool
    ) -> list[StoredEvent]:
        with TRANSLATED:
            rows = self._rows(stream_id, after, upto, limit, reverse)
        return [stored(stream_id, r) for r in rows]

    def _read_stream_payloads(self, stream_id: str, after: int, upto: int | None) -> list[PayloadRow]:
        with TRANSLATED:
            rows = self._rows(stream_id, after, upto, None, False, payloads=True)
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _stream_version(self, stream_id: str) -> int:
        with TRANSLATED:
            self._live()
            return self._chain.tail(stream_id)

    def _read_all(self, after: int, limit: int | None, page_size: int) -> Iterator[list[StoredEvent]]:
        with TRANSLATED:
            self._live()
            slots = self._feed_reader.read(after)
        produced = 0
        while limit is None or produced < limit:
            with TRANSLATED:
                rows = next(slots, None)
            if rows is None:
                return
            if limit is not None:
                rows = rows[: limit - produced]
            produced += len(rows)
            if rows:
                yield [stored(stream_id, row) for stream_id, row in rows]

    def _key_tables_exist(self) -> bool:
        if self._key_table is not None:
            return True
        with TRANSLATED:
            found = self._live().execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND table_name = %s",
                (self.keyspace, "key_store_checks"),
            )
            return found.one() is not None

    def key_table(self) -> KeyTable:
        """Wrapped data keys in this keyspace (``es_core.stores.cassandra_keys``), created on first use."""
        if self._key_table is None:
            with TRANSLATED:
                self._key_table = CassandraKeyTable(self._live(), self.keyspace, self._live, self._q)
        return self._key_table

    def head_position(self) -> int:
        with TRANSLATED:
            self._live()
            return self._feed_reader.head()

    def settled_position(self, *, wait: bool = True) -> int:
        """The position up to which no earlier event can still appear (see ``cassandra_feed``):
        closes the feed's slots up to the head's and fences the partitions announced in them
        (one conditional write each, shared by every reader). With ``wait`` (the default), first
        gives appends in the head's slot up to ``feed_lease_ms`` to finish, so the result
        reaches the head when no append is under way; without, settles only the slots this
        handle's clock has seen end, at once."""
        with TRANSLATED:
            self._live()
            return self._feed_reader.settle(wait=wait)

    def feed_status(self) -> FeedStatus:
        """Settled and head positions, lag, unsettled partitions, holes and clocks, reported
        apart (without settling anything: ``settled_position`` does that)."""
        with TRANSLATED:
            self._live()
            return self._feed_reader.status()

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

    # -- partitioned reads (cassandra_splits) ----------------------------------------------------

    @property
    def split_origin(self) -> str:
        """The cluster's name and the keyspace: the same whichever nodes a handle contacts."""
        return self._splits.origin()

    def _split(self, count: int) -> list[StoreSplit]:
        upto = self.settled_position()
        with TRANSLATED:
            self._live()
            return self._splits.plan(self.url, count, upto)

    def _read_split(self, split: StoreSplit, page_size: int) -> Iterator[list[StoredEvent]]:
        self._live()
        return self._splits.read(split, page_size)

    # -- snapshots and retention ------------------------------------------------------------------

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        with TRANSLATED:
            self._snapshots.save(snapshot)

    def _latest_snapshot(self, stream_id: str, upto: int | None) -> Snapshot | None:
        with TRANSLATED:
            return self._snapshots.latest(stream_id, upto)

    def _snapshot_versions(self, stream_id: str) -> list[int]:
        with TRANSLATED:
            return self._snapshots.versions(stream_id)

    def _delete_snapshots(self, stream_id: str, versions: list[int]) -> None:
        with TRANSLATED:
            self._snapshots.delete(stream_id, versions)

    def _truncate_stream(self, stream_id: str, before_version: int) -> int:
        with TRANSLATED:
            return self._chain.truncate(stream_id, before_version)

    # -- inspection -------------------------------------------------------------------------------

    def schema(self) -> dict[str, str]:
        """The CQL that creates this store's keyspace, tables and index, by name."""
        return schema_cql(self.keyspace, self.replication_factor, self.datacenter)

    def partitions(self, stream_id: str) -> list[dict[str, int]]:
        """One dict per partition of the stream: bucket, rows, first and last version, head."""
        stream_id = check_stream_id(stream_id)
        with TRANSLATED:
            return self._chain.describe(stream_id)

    # -- lifecycle --------------------------------------------------------------------------------

    def close(self) -> None:
        """Release this handle's feed writer number (if it appended) and disconnect."""
        if not self._closed:
            self._feed_writer.release()
            self._closed = True
            self.cluster.shutdown()


__all__ = ["CassandraStore", "FeedStatus", "parse_url"]
