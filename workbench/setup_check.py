"""Notebook 0's checks: what is installed, whether the store writes and reads back, and how fast
this machine simulates, with the size to run the workshop at."""

from __future__ import annotations

import importlib.metadata
import platform
import sqlite3
import time
from dataclasses import dataclass

import pandas as pd

import downloads
from es_core import Expect, MemoryStore, NewEvent

from .settings import notebook_store

# what the notebooks import, plus the driver notebook 8 uses when a Cassandra node answers
DISTRIBUTIONS = ("es-workbench", "msgspec", "pandas", "plotly", "ipywidgets", "tqdm", "jupyterlab")
OPTIONAL = ("scylla-driver",)
# events per second of the speed check below which full-size runs take more than a few minutes
# per notebook: about half the rate of the 2-core machine the workshop's minutes were measured on
SMALL_MODE_BELOW = 1_000


def versions() -> pd.DataFrame:
    """Python, SQLite and every library the workshop uses, with its installed version."""
    rows = [
        {"component": "Python", "version": platform.python_version(), "needed": True},
        {"component": "SQLite", "version": sqlite3.sqlite_version, "needed": True},
    ]
    for name in DISTRIBUTIONS + OPTIONAL:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        rows.append({"component": name, "version": version, "needed": name not in OPTIONAL})
    return pd.DataFrame(rows, columns=["component", "version", "needed"])


@dataclass
class StoreCheck:
    """One event written to the notebooks' store and read back."""

    url: str
    wrote: int
    read_back: int
    seconds: float

    @property
    def ok(self) -> bool:
        return self.wrote == self.read_back == 1


def check_store(name: str = "00_setup") -> StoreCheck:
    """Open a fresh store where the notebooks write (``ES_STORE_URL`` or a SQLite file), append
    one event, read it back and close it."""
    started = time.perf_counter()
    store = notebook_store(name)
    try:
        result = store.append("setup-check", [NewEvent(event_type="SetupChecked", data={"ok": True})], Expect.NO_STREAM)
        read = store.read_stream("setup-check")
        return StoreCheck(store.url, result.count, len(read), time.perf_counter() - started)
    finally:
        store.close()


@dataclass
class SpeedCheck:
    """A small seeded simulation in memory, timed."""

    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else float("inf")

    @property
    def advice(self) -> str:
        if self.events_per_second < SMALL_MODE_BELOW:
            return "this machine is slow for full size: run the workshop with ES_SMALL=1"
        return "full size is fine here (ES_SMALL=1 makes every notebook quicker still)"


def speed_check(members: int = 40, days: int = 60, seed: int = 1) -> SpeedCheck:
    """Simulate ``members`` for ``days`` into memory and time it."""
    store = MemoryStore()
    started = time.perf_counter()
    downloads.simulate(store, members=members, days=days, seed=seed)
    seconds = time.perf_counter() - started
    events = store.head_position()
    store.close()
    return SpeedCheck(events, seconds)
