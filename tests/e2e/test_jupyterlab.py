"""Run a notebook through the JupyterLab UI in headless Chromium.

The probe notebook is generated per test and exercises what the project's
notebooks rely on: a plotly figure, an ipywidgets slider whose observer
updates an HTML widget (a kernel round trip), and a ``tqdm.auto`` bar.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

try:
    from .lab import error_outputs, open_notebook, require_module, run_all_cells, save_screenshot
except ImportError:  # imported as a top-level module (no tests/e2e/__init__.py)
    from lab import (  # type: ignore[no-redef]
        error_outputs,
        open_notebook,
        require_module,
        run_all_cells,
        save_screenshot,
    )

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import LabFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

PROBE_CELLS = [
    """\
import plotly.graph_objects as go

fig = go.Figure(go.Scatter(x=[1, 2, 3, 4], y=[4, 1, 3, 2], mode="lines+markers", name="probe"))
fig.update_layout(title="probe chart", height=350)
fig.show()""",
    """\
import ipywidgets as widgets
from IPython.display import display

slider = widgets.IntSlider(value=3, min=0, max=10, description="n")
square = widgets.HTML()


def show_square(change: object = None) -> None:
    square.value = f"<b>n = {slider.value}, n squared = {slider.value ** 2}</b>"


show_square()
slider.observe(show_square, names="value")
display(slider, square)""",
    """\
import time

from tqdm.auto import tqdm

for _ in tqdm(range(20), desc="probe progress"):
    time.sleep(0.01)""",
]


def write_probe_notebook(path: Path) -> Path:
    nbformat = require_module("nbformat", "install jupyterlab into the venv")
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_markdown_cell("# e2e probe")]
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in PROBE_CELLS]
    nbformat.write(notebook, path)
    return path


def test_probe_notebook_runs_in_jupyterlab(
    tmp_path: Path, lab_factory: LabFactory, page: Page, screenshot_dir: Path
) -> None:
    # Safe to import: the `page` fixture has already required playwright.
    from playwright.sync_api import expect

    root = tmp_path / "notebooks"
    root.mkdir()
    notebook = write_probe_notebook(root / "e2e_probe.ipynb")

    t0 = time.monotonic()
    lab = lab_factory(root)
    t_lab = time.monotonic() - t0

    try:
        panel = open_notebook(page, lab, notebook.name)
        t_open = time.monotonic() - t0 - t_lab
        t_run = run_all_cells(page, lab, timeout_ms=90_000)

        # Plotly: the figure's SVG exists and holds a drawn data trace.
        plot = panel.locator(".js-plotly-plot").first
        expect(plot.locator("svg.main-svg").first).to_be_visible()
        expect(plot.locator("svg.main-svg g.trace.scatter path.js-line")).to_have_count(1)
        assert plot.locator("path.js-line").get_attribute("d"), "plotly trace has no path"

        # Slider: keyboard focus on the noUiSlider handle, one step right; the
        # kernel-side observer must rewrite the HTML widget.
        result = panel.locator(".widget-html-content", has_text="n squared")
        expect(result).to_have_text("n = 3, n squared = 9")
        handle = panel.locator(".widget-slider [role=slider]")
        expect(handle).to_have_count(1)
        handle.focus()
        handle.press("ArrowRight")
        expect(handle).to_have_attribute("aria-valuetext", "4")
        expect(result).to_have_text("n = 4, n squared = 16")

        # tqdm.auto picked the widget bar, which finished and turned green.
        # (Inner locators of `has=` are relative, hence page.locator.)
        done_bar = page.locator(".widget-hprogress .progress-bar-success")
        progress_row = panel.locator(".widget-hbox").filter(has=done_bar)
        expect(progress_row).to_have_count(1)
        # tqdm pads with U+2007 (figure space), so match spaces loosely.
        expect(progress_row).to_contain_text(re.compile(r"probe\s+progress:\s*100%\s*20/20"))

        errors = error_outputs(page)
        assert not errors, "notebook produced error output:\n" + "\n---\n".join(errors)
    finally:
        shot = save_screenshot(page, screenshot_dir / f"{notebook.stem}.png")
        console = getattr(page, "console_errors", [])
        print(f"\nscreenshot: {shot}")
        if console:
            print("browser console errors:\n  " + "\n  ".join(console))

    total = time.monotonic() - t0
    print(f"timings: lab start {t_lab:.1f}s, notebook open {t_open:.1f}s, run all {t_run:.1f}s, total {total:.1f}s")
