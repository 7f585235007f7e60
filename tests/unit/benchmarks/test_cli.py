"""The benchmark CLI runs end to end at smoke size and emits the documented JSON.

These tests time nothing: figures on a shared machine are not assertions. They check that
``--quick`` runs, that ``--json`` prints exactly one JSON object on stdout, and that the keys a
notebook and the README rely on are there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import tables
from benchmarks.workload import MemberAccount, member_plan, registry, run_command

ROOT = Path(__file__).resolve().parents[3]
FIGURES = ("append", "batch_append", "load", "load_snapshots", "read_all", "projection_rebuild")


def _cli(*args: str, tmp_path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args, "--quick", "--json", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must be one JSON object, got: {out.stdout[:500]}"
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def run_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _cli("run", tmp_path=tmp_path_factory.mktemp("bench"))


def test_run_reports_every_figure_with_ratios(run_result: dict[str, Any]) -> None:
    assert run_result["suite"] == "run"
    results = run_result["results"]
    for key in FIGURES:
        assert "es_core" in results[key] and "floor" in results[key], key
        assert results[key]["es_core"]["rounds"] >= 1
    for key in ("append", "load", "load_snapshots"):
        assert {"p50_ms", "p99_ms"} <= set(results[key]["es_core"])
    assert "ratio_to_floor" in results["append"]
    assert {key: (results[key]["label"], results[key]["unit"]) for key, _, _ in tables.FIGURES} == {
        key: (label, unit) for key, label, unit in tables.FIGURES
    }
    assert "ratio_to_floor_with_id_key" in results["append"]
    assert "cost" in results["snapshot_cost"]["es_core"]
    catch_up = results["subscription"]["catch_up"]
    assert catch_up["same_read_model"] and catch_up["ratio_to_floor"] > 0
    for where in ("separate_file", "beside_the_store"):
        lag = results["subscription"]["live_lag"][where]
        assert lag["applied"] == lag["events"] == lag["deliveries"] > 0, lag  # every event, once
        assert lag["p99_ms"] >= lag["p50_ms"] >= 0


def test_run_reports_machine_durability_and_equivalence(run_result: dict[str, Any]) -> None:
    machine = run_result["machine"]
    assert {"cpu", "cores", "ram_gb", "python", "sqlite", "date"} <= set(machine)
    assert run_result["durability"]["es_core"] == {"journal_mode": "WAL", "synchronous": "FULL"}
    assert run_result["durability"]["floor"] == run_result["durability"]["es_core"]
    equivalence = run_result["equivalence"]
    assert equivalence["counts_match"] and equivalence["projections_match"]


def test_peer_is_measured_or_explained(run_result: dict[str, Any]) -> None:
    peer = run_result["peer"]
    if not peer["available"]:
        assert peer["reason"]
        return
    assert run_result["equivalence"]["states_match"]
    for key in ("append", "load", "load_snapshots", "read_all"):
        assert "ratio_to_peer" in run_result["results"][key]
    assert {t["target"] for t in run_result["targets"]} >= {"append >= 1.5x peer", "global log read >= peer"}


def test_scaling_reports_rows_a_notebook_can_plot(tmp_path: Path) -> None:
    result = _cli("scaling", "--no-peer", tmp_path=tmp_path)
    rows = result["load"]
    assert {(r["events_per_aggregate"], r["snapshots"]) for r in rows if r["implementation"] == "es_core"} == {
        (20, False), (20, True), (60, False), (60, True),
    }
    assert all(r["p50_ms"] is not None for r in rows)
    assert tables.snapshot_cost_rows(result)[0]["implementation"] == "es_core"
    assert result["simulator"]["status"] in {"ok", "unavailable", "error"}


def test_unreachable_cassandra_is_reported_not_raised(tmp_path: Path) -> None:
    # port 1: nothing listens there, whether or not the backend module exists yet
    result = _cli("run", "--store", "cassandra://127.0.0.1:1/none?connect_timeout=1", tmp_path=tmp_path)
    assert result["cassandra"] == "unavailable"
    assert result["cassandra_reason"]


def test_markdown_table_quotes_machine_and_command(run_result: dict[str, Any]) -> None:
    table = tables.markdown_table({"run": run_result})
    assert "| append" in table and "Command: `python -m benchmarks run --quick" in table


def test_workload_is_seeded_and_valid_for_the_account() -> None:
    assert member_plan(3, 50) == member_plan(3, 50)
    assert member_plan(3, 50) != member_plan(4, 50)
    account = MemberAccount("m000003")
    for command in member_plan(3, 300):
        run_command(account, command)  # every command fits the account's state
    assert len(account.pending) == 300
    registry().validate()
