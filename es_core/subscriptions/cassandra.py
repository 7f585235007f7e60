"""Checkpoints in the Cassandra store's keyspace, through the store's public ``session``.

Cassandra cannot put a read model's writes and a position into one transaction, so a page here
is **at least once**: the handlers write through ``delivery.tx`` (the session) as the page goes,
and only then is the position stored, with a conditional update that also checks the lease,
the old position and the status. A crash (or a lost lease) between the two hands the page to
the next run again. Handlers get ``delivery.event_id`` and ``delivery.position`` to make their
effects idempotent; ``AppliedPositions`` keeps, per key of the read model, the last position
applied, so a handler can tell a redelivery from a first delivery.

Every write to the ``subscriptions`` table is conditional (Paxos), never mixed with plain
writes on the same rows. Only settled positions are delivered: the runner reads up to
``settled_position()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InvalidSubscriptionError
from ..stores.base import EventStore
from ..stores.cassandra_errors import TRANSLATED
from .checkpoints import Checkpoints, Clock, Page, check_page_state
from .records import ParkedEvent, SkippedEvent, SubscriptionState, check_name

TABLES = {
    "subscriptions": (
        "CREATE TABLE IF NOT EXISTS {ks}.subscriptions (name text PRIMARY KEY, position bigint, status text,"
        " owner text, lease_until double, reset_to bigint, last_error text, updated_at double)"
    ),
    "subscription_parked": (
        "CREATE TABLE IF NOT EXISTS {ks}.subscription_parked (subscription text, event_id uuid, position bigint,"
        " stream_id text, version int, event_type text, error text, attempts int, parked_at double,"
        " PRIMARY KEY (subscription, event_id))"
    ),
    "subscription_skips": (
        "CREATE TABLE IF NOT EXISTS {ks}.subscription_skips (subscription text, event_id uuid, reason text,"
        " skipped_at double, PRIMARY KEY (subscription, event_id))"
    ),
    "subscription_aliases": "CREATE TABLE IF NOT EXISTS {ks}.subscription_aliases (alias text PRIMARY KEY, name text)",
    "subscription_applied": (
        "CREATE TABLE IF NOT EXISTS {ks}.subscription_applied (subscription text, key text, position bigint,"
        " PRIMARY KEY ((subscription, key)))"
    ),
}
_COLUMNS = "name, position, status, owner, lease_until, reset_to, last_error, updated_at"


def ensure_tables(store: EventStore) -> None:
    """Create the subscription tables in the store's keyspace if any is missing (schema changes
    are slow on Cassandra, so existing tables are not touched)."""
    session, keyspace = _session(store), store.keyspace  # type: ignore[attr-defined]
    with TRANSLATED:
        present = {r[0] for r in session.execute(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,)
        )}
        for table, cql in TABLES.items():
            if table not in present:
                session.execute(cql.format(ks=keyspace))


def _session(store: EventStore) -> Any:
    session = getattr(store, "session", None)
    if session is None or store.scheme != "cassandra":
        raise InvalidSubscriptionError(f"Cassandra checkpoints need a Cassandra store, not {type(store).__name__}")
    return session


class CassandraCheckpoints(Checkpoints):
    kind = "cassandra"
    rolls_back = False

    def __init__(self, store: EventStore, *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.session = _session(store)
        self.keyspace: str = store.keyspace  # type: ignore[attr-defined]
        ensure_tables(store)

    def __repr__(self) -> str:
        return f"CassandraCheckpoints(keyspace={self.keyspace!r})"

    def _run(self, cql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with TRANSLATED:
            rows = list(self.session.execute(cql.format(ks=self.keyspace), params))
        return rows

    def _applied(self, cql: str, params: tuple[Any, ...]) -> bool:
        rows = self._run(cql, params)
        return bool(rows and rows[0][0])

    # -- rows ------------------------------------------------------------------------------

    def create(self, name: str) -> SubscriptionState:
        self._applied(
            "INSERT INTO {ks}.subscriptions (name, position, status, lease_until, last_error, updated_at)"
            " VALUES (%s, 0, 'active', 0, '', %s) IF NOT EXISTS",
            (name, self.clock()),
        )
        return self.get(name)

    def find(self, name: str) -> SubscriptionState | None:
        rows = self._run("SELECT " + _COLUMNS + " FROM {ks}.subscriptions WHERE name = %s", (name,))
        if not rows:
            return None
        name_, position, status, owner, lease_until, reset_to, last_error, updated_at = rows[0]
        return SubscriptionState(name_, position or 0, status or "active", owner, lease_until or 0.0, reset_to,
                                 last_error or "", updated_at or 0.0)

    def names(self) -> list[str]:
        return sorted(r[0] for r in self._run("SELECT name FROM {ks}.subscriptions"))

    def _swap_owner(self, name: str, expected: str | None, owner: str | None, lease_until: float) -> bool:
        return self._applied(
            "UPDATE {ks}.subscriptions SET owner = %s, lease_until = %s WHERE name = %s IF owner = %s",
            (owner, lease_until, name, expected),
        )

    def _set(self, name: str, **fields: Any) -> None:
        assignments = ", ".join(f"{column} = %s" for column in fields)  # columns come from the layer
        self._applied(
            f"UPDATE {{ks}}.subscriptions SET {assignments}, updated_at = %s WHERE name = %s IF EXISTS",
            (*fields.values(), self.clock(), name),
        )

    # -- pages -----------------------------------------------------------------------------

    @contextmanager
    def page(self, name: str, owner: str, start: int, lease_until: float) -> Iterator[Page]:
        page = Page(name, owner, start, lease_until, handle=self.session)
        check_page_state(self.find(name), page)
        yield page
        if page.reset_applied:
            for p in self.parked(name):
                if p.position > page.position:
                    self._run("DELETE FROM {ks}.subscription_parked WHERE subscription = %s AND event_id = %s",
                              (name, p.event_id))
        for p in page.parked:
            self._run(
                "INSERT INTO {ks}.subscription_parked (subscription, event_id, position, stream_id, version,"
                " event_type, error, attempts, parked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (p.subscription, p.event_id, p.position, p.stream_id, p.version, p.event_type, p.error, p.attempts,
                 p.parked_at),
            )
        for event_id, _how in page.resolved:
            self._run("DELETE FROM {ks}.subscription_parked WHERE subscription = %s AND event_id = %s",
                      (name, event_id))
        reset = ", reset_to = null" if page.reset_applied else ""
        if not self._applied(
            "UPDATE {ks}.subscriptions SET position = %s, lease_until = %s, updated_at = %s" + reset
            + " WHERE name = %s IF owner = %s AND position = %s AND status = 'active'",
            (page.position, lease_until, self.clock(), name, owner, start),
        ):
            check_page_state(self.find(name), page)  # says what changed
            raise AssertionError("the conditional update failed, yet nothing changed")  # pragma: no cover

    # -- parked, skipped, aliases ----------------------------------------------------------

    def parked(self, name: str) -> list[ParkedEvent]:
        rows = self._run(
            "SELECT subscription, event_id, position, stream_id, version, event_type, error, attempts, parked_at"
            " FROM {ks}.subscription_parked WHERE subscription = %s", (name,)
        )
        return sorted((ParkedEvent(*r) for r in rows), key=lambda p: p.position)

    def skipped(self, name: str) -> list[SkippedEvent]:
        rows = self._run(
            "SELECT subscription, event_id, reason, skipped_at FROM {ks}.subscription_skips WHERE subscription = %s",
            (name,),
        )
        return sorted((SkippedEvent(*r) for r in rows), key=lambda s: s.skipped_at)

    def _add_skip(self, skip: SkippedEvent) -> None:
        self._run(
            "INSERT INTO {ks}.subscription_skips (subscription, event_id, reason, skipped_at) VALUES (%s, %s, %s, %s)",
            (skip.subscription, skip.event_id, skip.reason, skip.skipped_at),
        )
        self._run("DELETE FROM {ks}.subscription_parked WHERE subscription = %s AND event_id = %s",
                  (skip.subscription, skip.event_id))

    def aliases(self) -> dict[str, str]:
        return dict(sorted(self._run("SELECT alias, name FROM {ks}.subscription_aliases")))

    def _set_alias(self, alias: str, name: str) -> None:
        self._run("INSERT INTO {ks}.subscription_aliases (alias, name) VALUES (%s, %s)", (alias, name))


class AppliedPositions:
    """Per key of a Cassandra read model, the last position a subscription applied to it.

    The pattern that makes an at-least-once handler's effect idempotent: ``if
    applied.is_new(key, d.position): <write the effect>; applied.record(key, d.position)``. A
    redelivered event finds its position recorded and is passed over. Key by what the effect
    changes (a stream, a row) while events arrive in order; key by event (e.g. stream and
    position) where a parked event may be applied after later ones. One window stays: a crash
    after the effect and before ``record`` applies that one event again on redelivery, so
    effects that must never repeat should be upserts of values (set, not add)."""

    def __init__(self, store: EventStore, subscription: str) -> None:
        self.session, self.keyspace = _session(store), store.keyspace  # type: ignore[attr-defined]
        self.subscription = check_name(subscription)
        ensure_tables(store)

    def position(self, key: str) -> int:
        with TRANSLATED:
            row = self.session.execute(
                f"SELECT position FROM {self.keyspace}.subscription_applied WHERE subscription = %s AND key = %s",
                (self.subscription, key),
            ).one()
        return int(row[0]) if row and row[0] is not None else 0

    def is_new(self, key: str, position: int) -> bool:
        return position > self.position(key)

    def record(self, key: str, position: int) -> None:
        with TRANSLATED:
            self.session.execute(
                f"INSERT INTO {self.keyspace}.subscription_applied (subscription, key, position) VALUES (%s, %s, %s)",
                (self.subscription, key, position),
            )

    def clear(self) -> None:
        """Forget every key (for a rebuild from zero). Reads the keys: for modest read models."""
        with TRANSLATED:
            keys = [r[1] for r in self.session.execute(
                f"SELECT subscription, key FROM {self.keyspace}.subscription_applied", ()
            ) if r[0] == self.subscription]
            for key in keys:
                self.session.execute(
                    f"DELETE FROM {self.keyspace}.subscription_applied WHERE subscription = %s AND key = %s",
                    (self.subscription, key),
                )

