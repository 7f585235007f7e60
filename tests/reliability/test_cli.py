"""``python -m reliability run``: the table, the JSON, the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reliability.cli import CHECKED, FORGETTING_ON_CLUSTER, ON_CLUSTER, _scenarios, main, with_keyspace
from reliability.report import ScenarioResult, format_table, run_passed

ROOT = Path(__file__).resolve().parents[2]


def test_json_run_of_one_scenario() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reliability", "run", "--scenarios", "fallback", "--seed", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["passed"] and data["seed"] == 1
    (row,) = data["scenarios"]
    assert row["scenario"] == "fallback" and row["status"] == "ok" and row["faults"] > 0
    assert {"lost", "duplicates", "violations", "acknowledged"} <= set(data["totals"])


def test_unknown_scenario_is_a_usage_error(capsys: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reliability", "run", "--scenarios", "meteor"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "unknown scenarios" in done.stderr


def test_the_cluster_scenarios_are_opt_in(monkeypatch: object) -> None:
    monkeypatch.delenv("ES_RELIABILITY_CLUSTER", raising=False)  # type: ignore[attr-defined]
    assert not set(_scenarios("")) & ON_CLUSTER
    monkeypatch.setenv("ES_RELIABILITY_CLUSTER", "1")  # type: ignore[attr-defined]
    chosen = _scenarios("")
    assert chosen[-1] == "cassandra-failure" and set(CHECKED) <= set(chosen)
    assert _scenarios("crash, races") == ["crash", "races"]
    assert _scenarios("checked") == list(CHECKED) and len(CHECKED) == 7


def test_the_table_fails_on_any_loss_duplicate_violation_or_error() -> None:
    ok = ScenarioResult("crash", "sqlite", faults=3, acknowledged=9)
    skipped = ScenarioResult("races", "cassandra", skipped="no node")
    assert run_passed([ok, skipped])
    table = format_table([ok, skipped])
    assert "PASS" in table and "skipped: no node" in table
    for field in ("lost", "duplicates", "violations"):
        bad = ScenarioResult("x", "sqlite")
        bad.problem(field.rstrip("s") if field != "lost" else "lost", "planted")
        assert not run_passed([ok, bad]) and "FAIL" in format_table([bad])
    assert not run_passed([ScenarioResult("x", "sqlite", error="boom")])


def test_main_returns_non_zero_when_a_scenario_fails(monkeypatch: object, tmp_path: Path) -> None:
    import reliability.cli as cli

    def failing(name: str, args: object, workdir: Path, cluster: object = None) -> list[object]:
        result = ScenarioResult(name, "sqlite")
        result.problem("lost", "planted")
        return [lambda: result]

    monkeypatch.setattr(cli, "_runners", failing)  # type: ignore[attr-defined]
    assert main(["run", "--scenarios", "crash", "--workdir", str(tmp_path), "--json"]) == 1


def test_the_cluster_command_stops_only_nodes_of_its_home(tmp_path: Path, capsys: object) -> None:
    assert main(["cluster", "stop", "--cluster-home", str(tmp_path)]) == 0  # nothing ran there: nothing to do
    assert "stopped" in capsys.readouterr().out  # type: ignore[attr-defined]


def _fake_forgetting(workdir: Path, *, seed: int, store_url: str = "", **sized: int) -> ScenarioResult:
    """Stands in for run_forgetting: its row's summary is the store URL it was given."""
    return ScenarioResult("forgetting", "cassandra" if store_url else "sqlite", summary=store_url)


def _forgetting_rows(monkeypatch: object, tmp_path: Path, scenarios: str, *, node: bool) -> list[str]:
    """Run ``scenarios`` with forgetting and the cluster stubbed (the rows go to stdout); returns
    the cluster scenarios asked for, in order."""
    import reliability.cli as cli
    import reliability.forgetting as forgetting

    asked: list[str] = []

    def on_cluster(names: list[str], *args: object) -> dict[str, object]:
        asked.extend(names)
        return {}

    url = "cassandra://127.0.0.9:9042/es_reliability?replication_factor=1&consistency=QUORUM"
    answer = (url, "") if node else ("", "no Cassandra node answers on 127.0.0.9:9042")
    monkeypatch.setattr(cli, "cassandra_race_url", lambda explicit: answer)  # type: ignore[attr-defined]
    monkeypatch.setattr(cli, "_on_cluster", on_cluster)  # type: ignore[attr-defined]
    monkeypatch.setattr(forgetting, "run_forgetting", _fake_forgetting)  # type: ignore[attr-defined]
    cli.main(["run", "--scenarios", scenarios, "--workdir", str(tmp_path), "--json"])
    return asked


def test_forgettings_cassandra_row_runs_on_the_node_or_else_on_the_cluster_or_says_why(
    monkeypatch: object, tmp_path: Path, capsys: object
) -> None:
    def rows() -> list[tuple[str, str, str, str]]:
        data = json.loads(capsys.readouterr().out)  # type: ignore[attr-defined]
        return [(r["scenario"], r["store"], r["skipped"], r["summary"]) for r in data["scenarios"]]

    # a node answers: the row runs there, in a keyspace of its own on the same node
    asked = _forgetting_rows(monkeypatch, tmp_path, "forgetting", node=True)
    assert asked == [] and rows() == [
        ("forgetting", "sqlite", "", ""),
        (
            "forgetting",
            "cassandra",
            "",
            "cassandra://127.0.0.9:9042/es_reliability_forgetting?replication_factor=1&consistency=QUORUM",
        ),
    ]
    # none answers and no cluster follows: skipped, saying why
    asked = _forgetting_rows(monkeypatch, tmp_path, "forgetting", node=False)
    assert asked == [] and rows() == [
        ("forgetting", "sqlite", "", ""),
        ("forgetting", "cassandra", "no Cassandra node answers on 127.0.0.9:9042", ""),
    ]
    # none answers and the run starts the cluster (as CI's does): the row goes to it, first
    asked = _forgetting_rows(monkeypatch, tmp_path, "forgetting,cassandra-failure,kill-client", node=False)
    assert asked == [FORGETTING_ON_CLUSTER, "kill-client", "cassandra-failure"]
    assert rows() == [("forgetting", "sqlite", "", "")]  # the cluster's rows: stubbed out here


def test_on_the_cluster_forgetting_uses_its_own_keyspace_and_an_unstarted_cluster_errs_its_row(
    monkeypatch: object, tmp_path: Path
) -> None:
    import argparse

    import reliability.cli as cli
    import reliability.forgetting as forgetting
    from reliability.cluster import Cluster

    cluster = Cluster(tmp_path, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    args = argparse.Namespace(
        size="small", seed=7, store_url="", cluster_home=str(tmp_path), running_cluster=False, keep=False
    )
    monkeypatch.setattr(forgetting, "run_forgetting", _fake_forgetting)  # type: ignore[attr-defined]
    (runner,) = cli._runners(FORGETTING_ON_CLUSTER, args, tmp_path, cluster)
    url = runner().summary  # every node, replication factor 3, QUORUM
    assert url.startswith("cassandra://127.0.0.1,127.0.0.2,127.0.0.3:9042/es_reliability_forgetting?")
    assert "replication_factor=3" in url and "consistency=QUORUM" in url
    assert with_keyspace("cassandra://a,b:9042/ks?x=1", "other") == "cassandra://a,b:9042/other?x=1"

    def no_cluster(*_: object, **__: object) -> object:
        raise RuntimeError("no Java")

    monkeypatch.setattr(cli, "running_cluster", no_cluster)  # type: ignore[attr-defined]
    results: list[ScenarioResult] = []
    cli._on_cluster([FORGETTING_ON_CLUSTER, "kill-client"], args, lambda *a: None, results, None)
    assert [(r.scenario, r.store, r.status) for r in results] == [
        ("forgetting", "cassandra", "error"),
        ("kill-client", "cassandra", "error"),
    ]
    assert "no Java" in results[0].error


def test_stop_and_status_find_the_addresses_the_cluster_was_started_on(monkeypatch: object, tmp_path: Path) -> None:
    # a cluster on 127.0.0.1-3 makes a new cluster choose 127.0.0.11-13: stop must not
    import reliability.cluster as cluster_module

    monkeypatch.delenv("ES_RELIABILITY_CLUSTER_ADDRESSES", raising=False)  # type: ignore[attr-defined]
    monkeypatch.setattr(cluster_module, "port_open", lambda *_: True)  # type: ignore[attr-defined]
    assert cluster_module.addresses_of(tmp_path) == ["127.0.0.11", "127.0.0.12", "127.0.0.13"]  # none recorded
    (tmp_path / cluster_module.ADDRESSES_FILE).write_text("127.0.0.1\n127.0.0.2\n127.0.0.3\n")
    assert cluster_module.addresses_of(tmp_path) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    monkeypatch.setenv("ES_RELIABILITY_CLUSTER_ADDRESSES", "127.0.0.21")  # type: ignore[attr-defined]
    assert cluster_module.addresses_of(tmp_path) == ["127.0.0.21"]  # the user's choice wins
