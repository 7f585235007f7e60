"""Durable subscriptions: read models fed from the global log that never skip or repeat an effect.

::

    from es_core.subscriptions import Subscription, SQLiteCheckpoints, SubscriptionAdmin

    checkpoints = SQLiteCheckpoints.beside(store)          # the read model's tables live here too
    def handle(d):                                         # d.tx: the page's open transaction
        d.tx.execute("INSERT INTO seen VALUES (?, ?)", (d.record.stream_id, d.position))
    sub = Subscription(store, checkpoints, "seen", handle)
    sub.catch_up()                                         # or sub.run(stop=event): catch up, then live
    SubscriptionAdmin(store, checkpoints).status()         # position, head, lag; reset, pause, skip ...

Guarantees, per backend, are in ``docs/subscriptions.md``. The command line is
``python -m es_core.subscriptions``.
"""

from __future__ import annotations

from typing import Any

from ..stores.base import EventStore
from ..stores.memory import MemoryStore
from ..stores.sqlite import SQLiteStore
from .admin import SubscriptionAdmin
from .checkpoints import Checkpoints
from .memory import MemoryCheckpoints
from .records import Delivery, ParkedEvent, SkippedEvent, SubscriptionState, SubscriptionStatus
from .runner import Handler, ResetHook, Subscription
from .sqlite import SQLiteCheckpoints


def checkpoints_for(store: EventStore, **options: Any) -> Checkpoints:
    """Checkpoints that live with ``store``: its own SQLite file, its Cassandra keyspace, or
    (for a memory store) process memory."""
    if isinstance(store, SQLiteStore):
        return SQLiteCheckpoints.beside(store, **options)
    if isinstance(store, MemoryStore):
        return MemoryCheckpoints(**options)
    if store.scheme == "cassandra":
        from .cassandra import CassandraCheckpoints

        return CassandraCheckpoints(store, **options)
    from ..errors import InvalidSubscriptionError

    raise InvalidSubscriptionError(f"no checkpoint backend for {type(store).__name__}")


__all__ = [
    "Checkpoints",
    "Delivery",
    "Handler",
    "MemoryCheckpoints",
    "ParkedEvent",
    "ResetHook",
    "SQLiteCheckpoints",
    "SkippedEvent",
    "Subscription",
    "SubscriptionAdmin",
    "SubscriptionState",
    "SubscriptionStatus",
    "checkpoints_for",
]
