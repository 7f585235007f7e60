"""Backends and ``open_store``, the one place a backend is chosen from a URL.

=========================================  ==================================================
``memory://``                              in-process, for tests and scratch replays
``sqlite:///relative/path.db``             the embedded default (three slashes: relative path)
``sqlite:////absolute/path.db``            four slashes: absolute path
``sqlite:///x.db?synchronous=normal``      WAL without fsync per commit (bulk simulations)
``sqlite:///x.db?page_size=4096``          page size of a new file (see ``sqlite.PAGE_SIZE``)
``cassandra://[user@]host[:port]/ks?...``  Apache Cassandra / ScyllaDB (``es_core.stores.cassandra``)
=========================================  ==================================================
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import InvalidStoreUrlError
from .base import Clock, EventStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

DEFAULT_STORE_URL = "sqlite:///data/local/events.db"
"""Used when neither an argument nor ``ES_STORE_URL`` names a store."""


def default_store_url() -> str:
    return os.environ.get("ES_STORE_URL") or DEFAULT_STORE_URL


def open_store(url: str | None = None, *, clock: Clock | None = None, **options: Any) -> EventStore:
    """Open the store a URL names (default: ``$ES_STORE_URL``, else ``DEFAULT_STORE_URL``)."""
    url = default_store_url() if url is None else url
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreUrlError(f"not a store URL: {url!r} (expected e.g. {DEFAULT_STORE_URL!r})")
    parts = urlsplit(url)
    opener = _OPENERS.get(parts.scheme)
    if opener is None:
        raise InvalidStoreUrlError(
            f"unknown store scheme {parts.scheme!r} in {url!r}; known: {', '.join(sorted(_OPENERS))}"
        )
    return opener(url, clock, options)


def _open_memory(url: str, clock: Clock | None, options: dict[str, Any]) -> EventStore:
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise InvalidStoreUrlError(f"a memory store URL takes no host or path: {url!r}")
    return MemoryStore(clock=clock, **options)


def names_missing_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist: opening it would create an
    empty store, which a tool meant to read a recorded one must refuse (a typo in a path)."""
    return urlsplit(url).scheme == "sqlite" and not Path(sqlite_path(url)).exists()


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:`` URL names: ``sqlite:///relative.db`` -> ``relative.db``,
    ``sqlite:////absolute.db`` -> ``/absolute.db``."""
    path = urlsplit(url).path
    return path[1:] if path.startswith("/") else path


def _open_sqlite(url: str, clock: Clock | None, options: dict[str, Any]) -> EventStore:
    parts = urlsplit(url)
    if parts.netloc:
        raise InvalidStoreUrlError(f"use sqlite:///relative.db or sqlite:////absolute.db, not {url!r}")
    path = sqlite_path(url)
    if not path or path.endswith("/"):
        raise InvalidStoreUrlError(f"a sqlite store URL needs a file path: {url!r}")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("busy_timeout_ms", "page_size") and value.isdigit():
            options.setdefault(key, int(value))
        elif key == "synchronous" and value in SQLiteStore.SYNCHRONOUS:
            options.setdefault(key, value)
        else:
            raise InvalidStoreUrlError(
                f"unknown or bad sqlite option {key}={value!r} in {url!r} "
                "(known: busy_timeout_ms=<ms>, synchronous=full|normal, page_size=<bytes>)"
            )
    return SQLiteStore(path, clock=clock, **options)


def _open_cassandra(url: str, clock: Clock | None, options: dict[str, Any]) -> EventStore:
    try:
        from .cassandra import CassandraStore
    except ImportError as exc:  # the driver is an optional extra
        raise InvalidStoreUrlError(
            f"{url!r} needs the Cassandra driver: pip install 'es-workbench[cassandra]' ({exc})"
        ) from exc
    return CassandraStore.from_url(url, clock=clock, **options)


_OPENERS: dict[str, Callable[[str, Clock | None, dict[str, Any]], EventStore]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "cassandra": _open_cassandra,
}

__all__ = [
    "DEFAULT_STORE_URL", "EventStore", "MemoryStore", "SQLiteStore", "default_store_url", "open_store", "sqlite_path",
]
