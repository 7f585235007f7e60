"""``python -m downloads`` in a subprocess, as a user (or CI) runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from downloads import DEFAULT_RULES_PATH

ROOT = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "downloads", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:  # type: ignore[type-arg]
    url = f"sqlite:///{tmp_path_factory.mktemp('cli')}/sim.db"
    done = run("simulate", "--small", "--store", url, "--json")
    assert done.returncode == 0, done.stderr
    return url, json.loads(done.stdout)


def test_simulate_small_prints_one_json_object() -> None:
    done = run("simulate", "--small", "--json", "--store", "memory://")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["members"], report["days"], report["store"]) == (100, 90, "memory://")
    for key in ("commands", "events", "grants", "denials_by_rule", "duplicates_absorbed", "wall_seconds",
                "events_per_second"):
        assert key in report
    assert report["commands"] > 100 and report["events"] >= report["grants"] > 0
    assert sum(report["denials_by_rule"].values()) == report["denials"]


def test_simulate_prints_a_readable_summary() -> None:
    done = run("simulate", "--members", "20", "--days", "10", "--store", "memory://")
    assert done.returncode == 0, done.stderr
    assert "simulated 20 members x 10 days (seed 1)" in done.stdout
    assert "duplicates absorbed" in done.stdout and "events/s" in done.stdout


def test_whatif_reports_the_differences_as_json(recorded: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    url, sim = recorded
    done = run("whatif", "--store", url, "--rules", str(DEFAULT_RULES_PATH.parent / "generous_title_limit.toml"),
               "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rules"] == "generous-title-limit"
    assert report["download_requests"] == sim["grants"] + sim["denials"]
    assert report["denied_before"] == sim["denials"]
    assert report["newly_granted"] > 0  # (and knock-on effects may deny others later)
    same = json.loads(run("whatif", "--store", url, "--rules", str(DEFAULT_RULES_PATH), "--json").stdout)
    assert (same["newly_granted"], same["newly_denied"], same["changes"]) == (0, 0, [])


def test_explain_prints_a_timeline(recorded: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    url, _ = recorded
    done = run("explain", "--store", url, "--member", "m00001")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("v1 ") and "subscribed on the" in done.stdout


def test_check_accepts_good_files_and_names_the_problem_in_bad_ones(tmp_path: Path) -> None:
    assert run("check", str(DEFAULT_RULES_PATH), "data/catalogue.toml").returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[plans.basic]\ndevices_with_downloads = -2\n', encoding="utf-8")
    done = run("check", str(bad))
    assert done.returncode == 2
    assert "plans.basic.devices_with_downloads" in done.stderr and str(bad) in done.stderr


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    done = run("whatif", "--store", f"sqlite:///{tmp_path}/none.db", "--rules", str(DEFAULT_RULES_PATH))
    assert done.returncode == 2 and "no store" in done.stderr
    assert not (tmp_path / "none.db").exists()


def test_simulate_refuses_a_store_that_already_holds_events(recorded: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    url, _ = recorded
    done = run("simulate", "--small", "--store", url)
    assert done.returncode == 2 and "--fresh" in done.stderr
