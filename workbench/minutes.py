"""How long the workshop's core path takes: ``python -m workbench minutes``.

For each chapter of the core path, three parts, each from something measured or counted:

* **run**: the seconds its cells take in the default (full-size) mode, as ``nbclient`` timed
  them in a run of the notebook (``workbench.execute``, reused when unchanged);
* **read**: the words of its core prose (markdown; not the optional sections and exercises,
  not "Further reading", wherever their headings fall) at ``WORDS_PER_MINUTE``, and
  ``SECONDS_PER_CELL`` for each core code cell (run it, glance at what it shows; not the collapsed solutions);
* **exercise**: a fixed allowance for its one starred exercise, ``EXERCISE_MINUTES``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .execute import cell_seconds, execute_notebook

WORDS_PER_MINUTE = 200  # reading technical prose while following along
SECONDS_PER_CELL = 6  # running a code cell and glancing at its output
EXERCISE_MINUTES = 4  # one starred exercise: read the prompt, try, compare with the solution
SKIPPED_SECTIONS = ("(optional)", "Further reading")


def core_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells a reader of the core path reads: every cell but collapsed solutions and the
    sections whose heading says "(optional)" or "Further reading" (up to the next heading).

    A section may start inside a markdown cell ("## In practice" then "## Further reading" in
    one cell), so markdown is split at its headings and only the core part of a cell is kept."""
    kept, skipping = [], False
    for cell in cells:
        solution = "solution" in cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown":
            parts = []
            for part in _sections("".join(cell["source"])):
                heading = re.match(r"#+ (.*)", part)
                if heading:
                    skipping = any(mark in heading.group(1) for mark in SKIPPED_SECTIONS)
                if not skipping:
                    parts.append(part)
            if parts and not solution:
                source = "".join(parts)
                kept.append(cell if source == "".join(cell["source"]) else {**cell, "source": source})
        elif not skipping and not solution:
            kept.append(cell)
    return kept


def _sections(markdown: str) -> list[str]:
    """``markdown`` cut before each heading line (not inside a fenced code block)."""
    parts, current, fenced = [], "", False
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"#+ ", line) and current:
            parts.append(current)
            current = ""
        current += line
    return [*parts, current] if current else parts


def words(cells: list[dict[str, Any]]) -> int:
    return sum(len(re.findall(r"[A-Za-z0-9_]+", "".join(c["source"]))) for c in cells)


def chapter_minutes(notebook: Path, executed: Path) -> dict[str, Any]:
    cells = core_cells(json.loads(notebook.read_text(encoding="utf-8"))["cells"])
    count = words([c for c in cells if c["cell_type"] == "markdown"])
    code = sum(1 for c in cells if c["cell_type"] == "code")
    run = sum(cell_seconds(executed))
    read = count / WORDS_PER_MINUTE + code * SECONDS_PER_CELL / 60
    total = math.ceil(run / 60 + read + EXERCISE_MINUTES)
    return {
        "notebook": notebook.name,
        "run_s": round(run),
        "words": count,
        "code_cells": code,
        "read_min": round(read, 1),
        "exercise_min": EXERCISE_MINUTES,
        "minutes": total,
    }


def core_path_minutes(notebooks: list[Path], *, reuse: bool = True) -> pd.DataFrame:
    """One row per core chapter, running each in full size first (or reusing a run)."""
    rows = []
    for notebook in notebooks:
        result = execute_notebook(notebook, small=False, reuse=reuse)
        if not result.ok:
            raise RuntimeError(f"{notebook.name} failed:\n{result.error}")
        rows.append(chapter_minutes(notebook, result.output))
    return pd.DataFrame(rows)
