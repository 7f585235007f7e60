"""Opening a store whose device names may be sealed, with the key-encryption key (KEK) taken from
the environment: how ``python -m downloads`` opens every store, and how a script can too::

    store = open_store(url)
    protect_from_environment(store)   # reads $ES_KEK when the store needs it

The KEK never travels on a command line (where process listings and shell histories show it);
only the name of the variable that holds it does.
"""

from __future__ import annotations

import os

from es_core import KEK_VARIABLE, EventStore, KeyStore, KeyStoreError, kek_from_environment

from .events import personal_data


def protect_from_environment(store: EventStore, variable: str | None = None) -> KeyStore | None:
    """Protect ``store`` with ``personal_data()`` and the KEK in the environment variable
    ``variable`` (default ``ES_KEK``), in the key store's default scope, and return its key
    store; or return None and leave ``store`` as it is when it is not protected and no KEK is
    given. The variable counts as given when it is set, or when ``variable`` names it.

    ``KeyStoreError`` (nothing read or written) when the store is protected and no KEK is
    given, naming the variable to set; when the variable is given but unset or malformed; when
    the KEK is not the store's own (``EventStore.protect``'s start-up check); and when a KEK is
    given for a store that holds events but no key store (never protected, or its key store
    was lost: reading on would not tell the two apart). An empty store is protected from its
    first event."""
    name = variable or KEK_VARIABLE
    protected = store.has_key_store()
    if variable is None and not os.environ.get(name):
        if protected:
            raise KeyStoreError(
                f"the store is protected (its personal fields are sealed): set {name} to its key-encryption key "
                "('key_id:<32 bytes in base64>')"
            )
        return None
    kek = kek_from_environment(name)
    if not protected and store.head_position() > 0:
        raise KeyStoreError(
            f"{name} is set, but the store holds events and no key store: unset {name} to read a store that was "
            "never protected, or restore its key store if it was lost"
        )
    return store.protect(kek, personal_data())
