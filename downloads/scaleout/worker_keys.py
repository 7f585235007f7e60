"""How a worker opens the personal fields of a protected store without the key travelling.

The caller's handle holds the key store; a worker opens its own handle from the store's URL.
``WorkerKeys`` tells it what to protect that handle with: the key store's scope, the id of the
key-encryption key (KEK), the personal fields, and the name of the environment variable the
worker reads the KEK from. It holds no secret: the KEK is resolved in the worker's process.
"""

from __future__ import annotations

from typing import NamedTuple

from es_core import KEK_VARIABLE, EventStore, KeyStoreError, PersonalData, kek_from_environment

from ..errors import ScaleOutError


class WorkerKeys(NamedTuple):
    """What a worker needs to protect its handle on a protected store, the secret excepted."""

    scope: str
    kek_id: str
    personal: PersonalData
    variable: str


def worker_keys(store: EventStore, variable: str | None = None) -> WorkerKeys | None:
    """What workers need to open ``store``'s personal fields (None when it is not protected).
    ``variable``: the environment variable holding the KEK on the workers (default ``ES_KEK``).
    ``ScaleOutError`` for a store protected with a key table of the caller's own
    (``protect(table=...)``): workers can only open the backend's own."""
    keys, personal = store.key_store, store.personal_data
    if keys is None or personal is None:
        return None
    if keys.table is not store.key_table():
        raise ScaleOutError(
            "the store is protected with a key table of its own (protect(table=...)): workers open the "
            "backend's key table only, so it cannot be scaled out"
        )
    return WorkerKeys(keys.scope, keys.kek_id, personal, variable or KEK_VARIABLE)


def protect_on_worker(store: EventStore, keys: WorkerKeys) -> None:
    """Protect this worker's handle as the caller's is, with the KEK from this process's
    environment. ``KeyStoreError`` naming the variable when it is unset, malformed or holds
    another KEK: never placeholders or sealed bytes."""
    try:
        kek = kek_from_environment(keys.variable)
    except KeyStoreError as exc:
        raise KeyStoreError(f"a worker cannot open the protected store: {exc} in the worker's environment") from None
    if kek.key_id != keys.kek_id:
        raise KeyStoreError(
            f"a worker's {keys.variable} holds key-encryption key {kek.key_id!r}, but the store's is "
            f"{keys.kek_id!r}: set {keys.variable} on every worker to the store's key"
        )
    try:
        store.protect(kek, keys.personal, scope=keys.scope)
    except KeyStoreError as exc:
        raise KeyStoreError(
            f"a worker cannot open the protected store with the key in {keys.variable}: {exc}"
        ) from None
