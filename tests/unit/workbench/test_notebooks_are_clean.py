"""Every notebook is committed without outputs, imports only the public packages, has the
tutorial shape (what you'll do / learn / need ... on your own, with solutions ... in practice ...
further reading), and is listed once in the workshop's README."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from workbench.settings import PROJECT_ROOT
from workbench.site import chapters

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALLOWED = {"es_core", "downloads", "workbench", "pandas", "plotly", "ipywidgets"}
HEADINGS = (
    "## What you'll do",
    "## What you'll learn",
    "## What you'll need",
    "## On your own",
    "## In practice",
    "## Further reading",
)


def _cells(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:  # type: ignore[type-arg]
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def test_the_notebooks_are_numbered_from_the_setup_check_without_gaps() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert NOTEBOOKS[0].name == "00_setup_check.ipynb" and len(NOTEBOOKS) >= 9


def test_the_workshop_readme_lists_every_notebook_once_core_path_first() -> None:
    listed = chapters()
    assert sorted(c.path.name for c in listed) == [p.name for p in NOTEBOOKS], "one README row per notebook"
    parts = [c.part for c in listed]
    assert parts[0] == "Before the workshop" and listed[0].path.name == "00_setup_check.ipynb"
    assert parts[1:9] == ["The core path"] * 8, "notebooks 1-8 are the core path"
    assert all(p == "Optional chapters" for p in parts[9:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_outputs_are_committed(path: Path) -> None:
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a cell has outputs; clear them before committing"
            assert cell.get("execution_count") is None, f"{path.name}: a cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_imports_are_public_packages_or_the_standard_library(path: Path) -> None:
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse(_source(cell))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED or top in sys.stdlib_module_names, f"{path.name} imports {name}"
                if top in ("es_core", "downloads", "workbench"):
                    assert name == top, f"{path.name} imports {name}: use the public API of {top}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_tutorial_shape_and_runnable_solutions(path: Path) -> None:
    cells = _cells(path)
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    positions = [markdown.find(h) for h in HEADINGS]
    assert all(p >= 0 for p in positions), f"{path.name} misses one of {HEADINGS}"
    assert positions == sorted(positions), f"{path.name}: the tutorial sections are out of order"
    solutions = [c for c in cells if "solution" in c.get("metadata", {}).get("tags", [])]
    exercises = [c for c in cells if "exercise" in c.get("metadata", {}).get("tags", [])]
    assert solutions and len(solutions) == len(exercises), f"{path.name}: each exercise needs a solution cell"
    for cell in solutions:
        assert cell["cell_type"] == "code" and cell["metadata"]["jupyter"]["source_hidden"] is True
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    assert code.count("assert ") >= 5, f"{path.name}: cells that matter carry asserts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_exercise_sits_under_its_prompt_with_one_starred(path: Path) -> None:
    cells = _cells(path)
    prompts = []
    for i, cell in enumerate(cells):
        if "exercise" not in cell.get("metadata", {}).get("tags", []):
            continue
        prompt, solution = cells[i - 1], cells[i + 1]
        assert prompt["cell_type"] == "markdown" and "### " in _source(prompt), f"{path.name}: cell {i} has no prompt"
        assert "solution" in solution["metadata"].get("tags", []), f"{path.name}: cell {i} has no solution below it"
        assert "assert" in _source(solution), f"{path.name}: the solution after cell {i} checks nothing"
        prompts.append(_source(prompt).split("### ", 1)[1].splitlines()[0])
    starred = [p for p in prompts if p.startswith("★")]
    assert len(starred) == 1, f"{path.name}: one starred exercise, not {starred}"
    assert all(p.startswith("★") or "(optional)" in p for p in prompts), f"{path.name}: {prompts}"
