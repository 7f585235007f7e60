"""The headless tour: its steps, and (once) the HTML export of a notebook."""

from __future__ import annotations

from pathlib import Path

import pytest

from es_core import MemoryStore
from workbench.cli import main
from workbench.execute import notebook_paths
from workbench.tour import export_html, run_tour


def test_the_tour_appends_reads_and_replays() -> None:
    said: list[str] = []
    result = run_tour(MemoryStore(), say=said.append)
    assert result.events == 8
    assert result.state["plan"] == "standard" and result.state["licences"] == {}
    assert result.state_at_version_4["licences"] == {"lic-1": "quiet-frontier"}
    assert "expected version 6" in result.conflict and result.retry_was_duplicate
    assert any(line.startswith("replay") for line in said)


def test_the_command_line_runs_the_tour_without_export(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--no-export"]) == 0
    out = capsys.readouterr().out
    assert "append  member-ana v1" in out and "duplicate=True" in out


@pytest.mark.slow
def test_the_export_writes_html_a_browser_can_open(tmp_path: Path) -> None:
    tour = [p for p in notebook_paths() if p.name.startswith("01_")]
    written = export_html(tour, out_dir=tmp_path, say=lambda _: None)
    assert [p.name for p in written] == ["01_tour_of_event_sourcing.html"]
    html = written[0].read_text()
    assert "<html" in html and "member-ana" in html and "Traceback" not in html
