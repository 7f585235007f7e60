"""What-if on a Dask cluster gives the single-process report, field by field, on SQLite and
on the real Cassandra node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from downloads import load_rules, scaleout, whatif
from downloads.errors import ScaleOutError
from es_core import EventStore, open_store

from .conftest import STRICT_RULES, report_fields, rules_files


@pytest.mark.parametrize("rules_path", rules_files(), ids=lambda p: p.stem)
def test_the_cluster_report_equals_the_serial_one(history: EventStore, client: Any, rules_path: Path) -> None:
    rules = load_rules(rules_path)
    serial = whatif(history, rules, max_changes=5)
    seen: list[tuple[int, int]] = []
    on_cluster = scaleout.whatif(
        history, rules, client=client, max_changes=5, progress=lambda done, total: seen.append((done, total))
    )
    assert report_fields(on_cluster) == report_fields(serial)
    assert seen and seen[-1][0] == seen[-1][1]  # progress reached every split


@pytest.mark.parametrize("max_changes", [0, 7, 10_000])
def test_changes_are_listed_in_log_order_however_the_store_is_split(
    history: EventStore, client: Any, max_changes: int
) -> None:
    rules = load_rules(STRICT_RULES)
    serial = whatif(history, rules, max_changes=max_changes)
    assert serial.newly_denied > 20 and len(serial.by_member) > 10
    for splits in (1, 3, 17):
        on_cluster = scaleout.whatif(history, rules, client=client, max_changes=max_changes, splits=splits)
        assert report_fields(on_cluster) == report_fields(serial)


def test_a_memory_store_is_refused_with_a_reason(client: Any) -> None:
    with open_store("memory://") as store, pytest.raises(ScaleOutError, match="memory:// store lives in one process"):
        scaleout.whatif(store, load_rules(), client=client)


@pytest.mark.cassandra
def test_the_cluster_report_equals_the_serial_one_on_cassandra(client: Any, cassandra_history_url: str) -> None:
    with open_store(cassandra_history_url) as store:
        rules = load_rules(STRICT_RULES)
        serial = whatif(store, rules, max_changes=7)
        assert serial.newly_denied > 0
        on_cluster = scaleout.whatif(store, rules, client=client, max_changes=7, splits=5)
    assert report_fields(on_cluster) == report_fields(serial)
