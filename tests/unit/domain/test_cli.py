"""``python -m downloads`` in a subprocess, as a user (or CI) runs it."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from downloads import DEFAULT_RULES_PATH, AcquireLicense, DownloadService, RegisterDevice, Subscribe, load_rules
from es_core import open_store

T = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)

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


def test_every_option_says_what_it_does_and_its_default() -> None:
    from downloads.cli import _parser

    subcommands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subcommands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}: no help"
            if action.option_strings and not action.required and not isinstance(action, argparse._StoreTrueAction):
                assert "default" in action.help, f"{name} {action.option_strings[0]}: help names no default"


def test_simulate_says_what_it_is_about_to_do() -> None:
    done = run("simulate", "--members", "3", "--days", "2", "--store", "memory://")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("simulating 3 members x 2 days from 2026-01-01 (seed 1, rules default@")
    assert "into memory://" in done.stderr.splitlines()[0]


def test_start_takes_a_plain_date_as_midnight_utc() -> None:
    done = run("simulate", "--members", "2", "--days", "2", "--start", "2026-05-04", "--store", "memory://", "--json",
               "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["start"] == "2026-05-04T00:00:00Z" and done.stderr == ""


def test_explain_of_nothing_says_so_and_exits_1(recorded: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    url, _ = recorded
    nobody = run("explain", "--store", url, "--member", "nobody")
    assert nobody.returncode == 1 and nobody.stdout == "" and "member nobody has no events" in nobody.stderr
    unknown = run("explain", "--store", url, "--member", "m00001", "--request", "no-such-request")
    assert unknown.returncode == 1 and "request no-such-request of member m00001 has no events" in unknown.stderr
    granted = run("explain", "--store", url, "--member", "m00001", "--request", "m00001-1")
    assert granted.returncode == 1 and "was not denied" in granted.stderr


def test_the_plain_timeline_shows_request_ids_that_explain_takes(recorded: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    url, _ = recorded
    with open_store(url) as store:
        denied = next(r for r in store.read_all() if r.event_type == "DownloadDenied")
    member = denied.stream_id.removeprefix("member-")
    lines = run("explain", "--store", url, "--member", member).stdout.splitlines()
    assert lines[0].split()[:2] == ["v1", f"{member}-1"]
    shown = lines[denied.version - 1].split()
    assert shown[:2] == [f"v{denied.version}", denied.metadata["request_id"]] and "denied" in shown
    why = run("explain", "--store", url, "--member", member, "--request", shown[1])
    assert why.returncode == 0 and "judged under default@" in why.stdout


def test_check_reports_every_bad_file(tmp_path: Path) -> None:
    first, second = tmp_path / "one.toml", tmp_path / "two.toml"
    first.write_text('name = "one"\n[plans.basic]\ndevices_with_downloads = 0\n', encoding="utf-8")
    second.write_text('name = "two"\n[limits]\ndownloads_per_device = "many"\n[plans.basic]\n'
                      "devices_with_downloads = 1\n", encoding="utf-8")
    done = run("check", str(first), str(DEFAULT_RULES_PATH), str(second))
    assert done.returncode == 2
    errors = done.stderr.splitlines()
    assert len(errors) == 2 and str(first) in errors[0] and str(second) in errors[1]
    assert "limits.downloads_per_device" in errors[1] and "default.toml: ok" in done.stdout


def test_the_census_shows_a_rule_file_that_changed_between_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/census.db"
    edited = tmp_path / "default.toml"  # the same name, one limit changed
    edited.write_text(DEFAULT_RULES_PATH.read_text(encoding="utf-8").replace(
        "title_downloads_per_year = 2       # a premiere", "title_downloads_per_year = 1       # a premiere"
    ), encoding="utf-8")
    assert run("simulate", "--members", "6", "--days", "20", "--store", url, "--quiet").returncode == 0
    with open_store(url) as store:  # a second run, under the edited file, for other members
        service = DownloadService(store, load_rules(edited), clock=lambda: T)
        service.handle(Subscribe(member_id="late", at=T, request_id="join", plan="basic"))
        service.handle(RegisterDevice(member_id="late", at=T, request_id="phone", device_id="phone"))
        service.handle(AcquireLicense(member_id="late", at=T, request_id="get", device_id="phone",
                                      title_id="quiet-frontier"))
    done = run("census", "--store", url)
    assert done.returncode == 0, done.stderr
    assert "rule set 'default' changed between runs: judged with 2 contents" in done.stdout
    census = json.loads(run("census", "--store", url, "--json").stdout)
    assert [row["rules"] for row in census["rule_sets"]] == ["default", "default"]
    assert census["rule_sets"][1]["grants"] == 1 and len(census["changed"]["default"]) == 2
