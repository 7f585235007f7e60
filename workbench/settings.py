"""What a notebook run is sized for and where its events go.

Environment variables (all optional):

``ES_SMALL=1``              small data sizes, so every notebook runs in seconds (CI sets it)
``ES_STORE_URL``            the store to use instead of a fresh SQLite file per notebook
``ES_REQUIRE_CASSANDRA=1``  a notebook that needs Cassandra fails instead of falling back

Notebooks run with the notebook folder as their working directory, so every path here is
absolute, anchored at the project root.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from es_core import EventStore, MemoryStore, SQLiteStore, open_store
from es_core.stores import sqlite_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DATA = PROJECT_ROOT / "data" / "local" / "notebooks"
T = TypeVar("T")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """One notebook run's switches, read from the environment by :func:`settings`."""

    small: bool
    store_url: str | None
    require_cassandra: bool
    root: Path = PROJECT_ROOT

    def size(self, small: T, full: T) -> T:
        """``small`` in small mode (CI), ``full`` otherwise."""
        return small if self.small else full

    @property
    def backend(self) -> str:
        """The URL scheme notebooks will use: ``sqlite`` unless ``ES_STORE_URL`` says otherwise."""
        return urlsplit(self.store_url).scheme if self.store_url else "sqlite"

    def describe(self) -> str:
        mode = "small (ES_SMALL=1)" if self.small else "full"
        store = self.store_url or "a fresh SQLite file per notebook under data/local/notebooks/"
        return f"mode: {mode}; store: {store}"


def settings() -> Settings:
    """The current run's settings (read fresh each call, so a cell may change the environment)."""
    url = os.environ.get("ES_STORE_URL", "").strip() or None
    return Settings(small=_flag("ES_SMALL"), store_url=url, require_cassandra=_flag("ES_REQUIRE_CASSANDRA"))


def notebook_store_url(name: str, base_url: str | None = None) -> str:
    """The store URL a notebook called ``name`` uses: its own SQLite file, its own Cassandra
    keyspace, or a memory store; never one shared with another notebook.

    ``base_url`` replaces ``ES_STORE_URL``; an empty string means the default SQLite file."""
    _check_name(name)
    base = base_url if base_url is not None else settings().store_url
    if not base:
        return f"sqlite:///{NOTEBOOK_DATA / f'{name}.db'}"
    parts = urlsplit(base)
    if parts.scheme == "sqlite":
        raw = sqlite_path(base)
        path = Path(raw) if Path(raw).is_absolute() else PROJECT_ROOT / raw
        query = f"?{parts.query}" if parts.query else ""
        own = path.with_name(f"{path.stem}-{name}{path.suffix or '.db'}")
        return f"sqlite:///{own}{query}"
    if parts.scheme == "cassandra":
        keyspace = parts.path.strip("/") or "es_workbench"
        return urlunsplit(parts._replace(path=f"/{cassandra_keyspace(keyspace, name)}"))
    return base


def cassandra_keyspace(base: str, name: str) -> str:
    """``base`` suffixed with the notebook's name, within Cassandra's 48-character limit."""
    suffix = re.sub(r"[^a-z0-9_]", "_", name.lower())
    return f"{base}_{suffix}"[:48]


def notebook_store(
    name: str,
    *,
    fresh: bool = True,
    url: str | None = None,
    clock: Callable[[], datetime] | None = None,
    bulk: bool = False,
    **options: Any,
) -> EventStore:
    """Open the store for notebook ``name``. ``fresh=True`` starts it empty, so a notebook
    run top to bottom any number of times sees the same data.

    ``url`` is a base URL used instead of ``ES_STORE_URL`` and made per-notebook like it
    (``"memory://"`` for a scratch store, ``""`` for the default SQLite file). ``bulk=True``
    is for simulations: on SQLite, commits are not fsynced one by one (a crash of the machine
    may lose the last ones, which a scratch notebook store can afford)."""
    target = notebook_store_url(name, url)
    scheme = urlsplit(target).scheme
    if bulk and scheme == "sqlite" and "synchronous=" not in target:
        options.setdefault("synchronous", "normal")
    if scheme == "memory":
        return MemoryStore(clock=clock)
    if fresh and scheme == "sqlite":
        SQLiteStore.remove_files(sqlite_path(target))
    if fresh and scheme == "cassandra":
        _drop_keyspace(target)
    return open_store(target, clock=clock, **options)


def scratch_dir(name: str, *, fresh: bool = True) -> Path:
    """A per-notebook folder for files (archives, exports) under ``data/local/notebooks``."""
    _check_name(name)
    path = NOTEBOOK_DATA / name
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name or ""):
        raise ValueError(f"a notebook store name is letters, digits, '-' and '_', not {name!r}")


def _drop_keyspace(url: str) -> None:
    """Empty a per-notebook keyspace through the backend, whichever way it offers."""
    from .cassandra import drop_keyspace  # imported lazily: the driver is an optional extra

    drop_keyspace(url)


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters set or replaced."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


class ManualClock:
    """A store clock that a notebook moves by hand, so recorded times follow a story (or a
    simulation) instead of the wall clock. Call it to read the time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2024, 1, 1, tzinfo=UTC)
        if self.now.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware start")

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("a ManualClock needs timezone-aware times")
        self.now = moment
        return moment

    def advance(self, **delta: float) -> datetime:
        """Move on, e.g. ``clock.advance(hours=2)``; returns the new time."""
        self.now = self.now + timedelta(**delta)
        return self.now

    def __repr__(self) -> str:
        return f"ManualClock({self.now.isoformat()})"
