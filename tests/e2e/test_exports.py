"""Charts survive the ordinary exports: a plain ``jupyter nbconvert --to html --execute`` (no
renderer set by anyone) and JupyterLab's *File > Save and Export Notebook As > HTML* (the
server's nbconvert handler, on a notebook saved with its outputs). Each exported page is opened
from disk in headless Chromium with the network refused, and every chart must draw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from workbench.execute import execute_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import LabFactory

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "03_simulate_member_activity.ipynb"
FIGURES_IN_03 = 5  # weekly decisions, denials by rule, devices by kind, devices holding, top titles
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _charts_draw(page: Page, html: Path) -> int:
    """Open ``html`` (in an offline tab) and return how many charts drew data."""
    page.goto(html.as_uri(), timeout=120_000)  # the page carries plotly.js and every figure: slow when busy
    charts = page.locator(".plotly-graph-div")
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        assert charts.nth(i).locator("g.trace").count() > 0, f"chart {i} of {html.name} drew nothing"
    assert not [url for url in page.refused if "plotly" in url], f"{html.name} fetched {page.refused}"  # type: ignore[attr-defined]
    return charts.count()


def test_a_plain_nbconvert_execute_keeps_every_chart(tmp_path: Path, offline_page: Page) -> None:
    copy = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, copy)
    env = {**os.environ, "ES_SMALL": "1"}
    env.pop("PLOTLY_RENDERER", None)
    jupyter = Path(sys.executable).parent / "jupyter"
    subprocess.run(
        [str(jupyter), "nbconvert", "--to", "html", "--execute", str(copy)],
        cwd=NOTEBOOK.parent, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert _charts_draw(offline_page, copy.with_suffix(".html")) == FIGURES_IN_03


def test_jupyterlab_export_as_html_keeps_every_chart(
    tmp_path: Path, lab_factory: LabFactory, offline_page: Page
) -> None:
    result = execute_notebook(NOTEBOOK, small=True)
    assert result.ok, result.error
    saved = json.loads(result.output.read_text())
    saved["metadata"].pop("widgets", None)  # JupyterLab does not save widget state unless asked to
    root = tmp_path / "lab"
    root.mkdir()
    (root / NOTEBOOK.name).write_text(json.dumps(saved))
    lab = lab_factory(root)
    request = urllib.request.Request(
        f"{lab.base_url}/nbconvert/html/{NOTEBOOK.name}?download=true",
        headers={"Authorization": f"token {lab.token}"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        exported = tmp_path / "exported.html"
        exported.write_bytes(response.read())
    assert _charts_draw(offline_page, exported) == FIGURES_IN_03
