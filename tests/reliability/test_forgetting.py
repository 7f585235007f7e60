"""Forgetting under load, small: members forgotten while writers and a projection run; then no
plaintext of theirs in any file, and nobody else's data changed."""

from __future__ import annotations

from pathlib import Path

from reliability.forgetting import _scan, run_forgetting, secret
from reliability.report import ScenarioResult


def test_forgotten_members_leave_no_plaintext_and_others_are_unchanged(tmp_path: Path) -> None:
    result = run_forgetting(tmp_path, seed=7)
    assert result.status == "ok", (result.error, result.problems)
    assert result.faults == 2 and result.acknowledged > 100
    figures = result.figures
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
