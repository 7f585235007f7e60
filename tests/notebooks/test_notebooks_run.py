"""Every notebook runs top to bottom in a fresh kernel, in the mode the run asks for
(``ES_SMALL=1``, as ``scripts/run-tests`` sets it, or full size), and every cell passes: each
notebook's ``assert`` cells make this a test of what it teaches. The executed copies are kept
in ``artifacts/executed/`` for ``make docs`` and ``make tour`` (see ``workbench.execute``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench import settings
from workbench.execute import execute_notebook, notebook_paths

NOTEBOOKS = notebook_paths()
pytestmark = pytest.mark.timeout(1200)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(notebook: Path) -> None:
    result = execute_notebook(notebook, small=settings().small)
    assert result.ok, f"{notebook.name} failed ({'small' if result.small else 'full'} mode):\n{result.error}"
