"""``python -m reliability run``: the table, the JSON, the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reliability.cli import CHECKED, ON_CLUSTER, _scenarios, main
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
