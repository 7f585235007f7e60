"""Fixtures for the Dask engine's tests: one small recorded history per session, and one local
cluster of two worker processes shared by the tests (starting one takes seconds).

The whole folder skips when Dask (the ``dask`` extra) is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed", reason="the Dask engine needs the dask extra")

from downloads import load_catalogue, load_rules, personal_data, scaleout, simulate
from downloads.rules import DEFAULT_RULES_PATH
from es_core import EventStore, LocalKeyEncryptionKey, open_store

MEMBERS, DAYS, SEED = 60, 45, 11  # small, and every shipped rule file changes some outcome
RULES_DIR = DEFAULT_RULES_PATH.parent
WORKERS_START = 600
"""Seconds a worker process may take to (re)start: a guard against a hang, not a speed target
(a restart imports Dask and the project, which took over 120 s on a machine at load 35)."""


def report_fields(report: Any) -> dict[str, Any]:
    """A what-if report field by field, without its wall time."""
    fields = report.as_dict()
    fields.pop("wall_seconds")
    return fields


@pytest.fixture(scope="session")
def history_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('scaleout') / 'history.db'}"
    with open_store(url) as store:
        simulate(store, members=MEMBERS, days=DAYS, seed=SEED, rules=load_rules(), catalogue=load_catalogue())
    return url


@pytest.fixture
def history(history_url: str) -> Iterator[EventStore]:
    with open_store(history_url) as store:
        yield store


@pytest.fixture(scope="session")
def cassandra_history_url() -> str:
    """A history on the Cassandra node, in a keyspace of its own (test keyspaces outlive a run:
    simulated once, read every run)."""
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip("es_scaleout_history")
    with open_store(url) as store:
        if store.head_position() == 0:
            simulate(store, members=MEMBERS // 2, days=DAYS, seed=SEED, rules=load_rules(), catalogue=load_catalogue())
    return url


KEK = LocalKeyEncryptionKey(bytes(range(50, 82)), "kek-scaleout")  # fixed: the Cassandra keyspace outlives a run
FORGET_SHARE, DAYS_WITH_FORGETTING = 1.0, 240  # every member who cancels asks to be forgotten, and some cancel


def record(store: EventStore, members: int = MEMBERS) -> None:
    """Protect ``store`` (empty) with ``KEK`` and simulate members into it, some forgotten."""
    store.protect(KEK, personal_data())
    simulate(store, members=members, days=DAYS_WITH_FORGETTING, seed=SEED, forget_share=FORGET_SHARE)


@pytest.fixture(scope="session")
def protected_history_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A protected history (device names sealed) in which some members are forgotten."""
    url = f"sqlite:///{tmp_path_factory.mktemp('scaleout-protected') / 'history.db'}"
    with open_store(url) as store:
        record(store)
        assert store.key_store is not None and len(store.key_store.forgotten()) >= 3
    return url


@pytest.fixture(scope="session")
def client() -> Iterator[Any]:
    with scaleout.connect(workers=2, dashboard=False) as client:
        yield client


STRICT_RULES = Path(__file__).resolve().parents[1] / "fixtures" / "rules" / "strict.toml"


def rules_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.toml"))
