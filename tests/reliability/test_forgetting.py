"""Forgetting under load, small: members forgotten while writers and a projection run; then no
plaintext of theirs in any file (or, on Cassandra, any table of the keyspace), and nobody else's
data changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from es_core import NewEvent, open_store
from reliability.cli import FORGETTING_SIZES
from reliability.forgetting import _scan, run_forgetting, secret
from reliability.plaintext_scan import value_bytes
from reliability.report import ScenarioResult


def test_forgotten_members_leave_no_plaintext_and_others_are_unchanged(tmp_path: Path) -> None:
    result = run_forgetting(tmp_path, seed=7)
    assert result.status == "ok", (result.error, result.problems)
    figures = result.figures
    # how many commands reach a victim after their forgetting (refused) depends on thread timing
    assert result.faults == 2 and result.acknowledged + figures["commands_refused_after_forgetting"] > 100
    assert figures["files_scanned"] >= 3 and figures["archived_before_forgetting"] > 0
    assert figures["victims_named_in_read_models_before_forgetting"] == 2  # in the clear, then dropped
    assert figures["commands_refused_after_forgetting"] > 0  # the writers kept sending


def test_the_scan_finds_a_forgotten_members_plaintext(tmp_path: Path) -> None:
    (tmp_path / "leak.json").write_text(f'{{"name": "{secret("f01", "tv", 7)}"}}')
    result = ScenarioResult("forgetting", "sqlite")
    _scan(result, tmp_path, ["f00", "f01"], ["f01"], 7)
    assert result.violations == 1 and "leak.json" in result.problems[0]
    clean = ScenarioResult("forgetting", "sqlite")
    _scan(clean, tmp_path, ["f00", "f01"], ["f00"], 7)
    assert clean.violations == 0


def test_every_kind_of_column_value_is_scanned_as_bytes() -> None:
    util = pytest.importorskip("cassandra.util")  # the driver's collection types
    # a map column's value type (its serialised-key kind derives from it), holding a set's
    nested = util.OrderedMap([("k", [("a", b"b")]), ("n", util.SortedSet(["c"]))])
    assert list(value_bytes(nested)) == [b"k", b"a", b"b", b"n", b"c"]
    assert list(value_bytes(None)) == [] and list(value_bytes(memoryview(b"m"))) == [b"m"]
    assert list(value_bytes(12)) == [b"12"] and list(value_bytes({"s"})) == [b"s"]


# -- on Cassandra: the same scenario, and the scan of every table of its keyspace ------------------

KEYSPACE = "es_reliability_forgetting_test"  # dropped and created again by each test here


@pytest.mark.cassandra
def test_on_cassandra_forgotten_members_leave_no_plaintext_in_any_table(tmp_path: Path) -> None:
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip(KEYSPACE, consistency="QUORUM")
    result = run_forgetting(tmp_path, seed=7, store_url=url, **FORGETTING_SIZES["small"])  # CI's size
    assert (result.store, result.status) == ("cassandra", "ok"), (result.error, result.problems)
    figures = result.figures
    # how many commands reach a victim after their forgetting (refused) depends on thread timing
    assert result.faults == 2 and result.acknowledged + figures["commands_refused_after_forgetting"] > 100
    assert figures["files_scanned"] == 2 and figures["archived_before_forgetting"] > 0  # read models, archive
    assert figures["victims_named_in_read_models_before_forgetting"] == 2
    assert figures["commands_refused_after_forgetting"] > 0
    rows = figures["rows_by_table"]  # every table the schema lists, the key tables included
    assert {"events", "snapshots", "data_keys", "key_store_checks", "feed_announcements"} <= set(rows)
    assert rows["events"] > 100 and rows["data_keys"] == 8 and rows["snapshots"] > 0


@pytest.mark.cassandra
def test_the_table_scan_finds_plaintext_planted_in_any_table(tmp_path: Path) -> None:
    """A name appended to an unprotected store, and one in a table the store does not know of
    (found through system_schema), in a text column and in a set: each is found; nothing else is.
    A scan that reads no event at all is a violation of its own: it would prove nothing."""
    from es_core.stores.cassandra import CassandraStore
    from tests.cassandra_node import cassandra_url_or_skip

    url = cassandra_url_or_skip(KEYSPACE)
    CassandraStore.drop(url)
    members, seed = ["f00", "f01", "f02"], 7
    with open_store(url) as plain:  # not protected: the device name goes in as it is
        empty = ScenarioResult("forgetting", "cassandra")
        _scan(empty, tmp_path, members, ["f01"], seed, plain)
        assert empty.violations == 1 and "read no events" in empty.problems[0]
        plain.append("member-f01", [_named(secret("f01", "tv", seed))])
        plain.append("member-f00", [_named("f00's phone")])
        plain.session.execute(f"CREATE TABLE {KEYSPACE}.planted (k int PRIMARY KEY, note text, tags set<text>)")
        plain.session.execute(
            f"INSERT INTO {KEYSPACE}.planted (k, note, tags) VALUES (1, 'nothing', %s)",
            ({"x", secret("f02", "laptop", seed)},),
        )
        result = ScenarioResult("forgetting", "cassandra")
        _scan(result, tmp_path, members, ["f01", "f02"], seed, plain)
        assert result.violations == 2, result.problems
        found = " | ".join(result.problems)
        assert f"{KEYSPACE}.events.data holds f01's" in found and f"{KEYSPACE}.planted.tags holds f02's" in found
        assert result.figures["rows_by_table"]["planted"] == 1
        clean = ScenarioResult("forgetting", "cassandra")
        _scan(clean, tmp_path, members, ["f00"], seed, plain)  # f00's name is not a secret() of theirs
        assert clean.violations == 0 and clean.figures["rows_scanned"] > 2
    CassandraStore.drop(url)


def _named(device_name: str) -> NewEvent:
    return NewEvent(event_type="DeviceRegistered", data={"device_id": "tv", "device_name": device_name})
