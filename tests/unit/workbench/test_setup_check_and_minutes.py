"""Notebook 0's checks, and how the workshop's minutes are counted."""

from __future__ import annotations

import json
from pathlib import Path

from workbench import check_store, speed_check, versions
from workbench.minutes import (
    EXERCISE_MINUTES,
    SECONDS_PER_CELL,
    WORDS_PER_MINUTE,
    chapter_minutes,
    core_cells,
    words,
)


def test_versions_name_every_needed_library_and_find_them_installed() -> None:
    table = versions()
    needed = table[table["needed"]]
    assert {"Python", "SQLite", "es-workbench", "plotly", "ipywidgets", "tqdm"} <= set(needed["component"])
    assert needed["version"].notna().all()


def test_the_store_check_writes_one_event_and_reads_it_back() -> None:
    check = check_store("00_setup_test")
    assert check.ok and check.url.startswith("sqlite:///") and "00_setup_test" in check.url


def test_the_speed_check_times_a_seeded_simulation() -> None:
    first, second = speed_check(members=5, days=10, seed=3), speed_check(members=5, days=10, seed=3)
    assert first.events == second.events > 0 and first.events_per_second > 0
    assert "ES_SMALL=1" in first.advice


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    return {"cell_type": kind, "source": source, "metadata": {"tags": tags or []}}


def test_core_cells_leave_out_solutions_optional_sections_and_further_reading() -> None:
    cells = [
        _cell("markdown", "# Title\n\nfour words here now"),
        _cell("markdown", "### ★ Exercise 1: core"),
        _cell("code", "# Exercise 1", ["exercise"]),
        _cell("code", "print('secret solution')", ["solution"]),
        _cell("markdown", "### Exercise 2 (optional): skipped"),
        _cell("code", "skipped = True", ["exercise"]),
        _cell("markdown", "## In practice\n\nkept"),
        _cell("markdown", "## Further reading\n\n- skipped"),
    ]
    kept = [c["source"] for c in core_cells(cells)]
    assert kept == [cells[0]["source"], "### ★ Exercise 1: core", "# Exercise 1", "## In practice\n\nkept"]
    assert words(core_cells(cells)) == 5 + 3 + 2 + 3


def test_core_cells_split_a_markdown_cell_at_its_headings() -> None:
    cells = [
        _cell("markdown", "## On your own\n\nthree words here\n\n### Exercise 1 (optional): skipped\n\nnot counted"),
        _cell("code", "# Exercise 1", ["exercise"]),
        _cell("markdown", "## In practice\n\nkept\n\n```sh\n# not a heading\n```\n## Further reading\n\n- skipped"),
    ]
    kept = [c["source"] for c in core_cells(cells)]
    assert kept == ["## On your own\n\nthree words here\n\n", "## In practice\n\nkept\n\n```sh\n# not a heading\n```\n"]
    assert words(core_cells(cells)) == 6 + 7  # "On your own three words here", "In practice kept sh not a heading"


def test_chapter_minutes_add_the_measured_run_reading_and_the_exercise(tmp_path: Path) -> None:
    notebook = tmp_path / "01_x.ipynb"
    prose = _cell("markdown", " ".join(["word"] * WORDS_PER_MINUTE * 2))
    code = [_cell("code", "x = 1") for _ in range(60 // SECONDS_PER_CELL)]  # one minute of cells
    notebook.write_text(json.dumps({"cells": [prose, *code, _cell("code", "hidden", ["solution"])]}))
    executed = tmp_path / "01_x.executed.ipynb"
    timing = {"iopub.execute_input": "2026-01-01T10:00:00+00:00", "shell.execute_reply": "2026-01-01T10:01:30+00:00"}
    executed.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"execution": timing}}]}))
    row = chapter_minutes(notebook, executed)
    assert row["run_s"] == 90 and row["words"] == 2 * WORDS_PER_MINUTE and row["code_cells"] == len(code)
    assert row["read_min"] == 3.0 and row["minutes"] == 2 + 3 + EXERCISE_MINUTES  # 1.5 min of run, rounded up
