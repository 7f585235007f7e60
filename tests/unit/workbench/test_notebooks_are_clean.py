"""Every notebook is committed without outputs, imports only the public packages, and has the
tutorial shape (what you'll do / learn / need ... on your own, with solutions ... in practice)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from workbench.settings import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALLOWED = {"es_core", "downloads", "workbench", "pandas", "plotly", "ipywidgets"}
HEADINGS = ("## What you'll do", "## What you'll learn", "## What you'll need", "## On your own", "## In practice")


def _cells(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:  # type: ignore[type-arg]
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def test_the_nine_notebooks_exist() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 10)]


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
