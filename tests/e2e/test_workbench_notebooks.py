"""The workbench as its users meet it: the README's main command (`make lab`), typed exactly,
serves the notebooks; headless Chromium runs every notebook through the JupyterLab UI and
checks what a person would see. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .lab import LabServer, error_outputs, open_notebook, run_all_cells, run_lab, save_screenshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
README_MAIN_COMMAND = ["make", "lab"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_the_readme_opens_with_the_command_this_test_runs() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert first_block, "the README opens with no command block"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands[0] == " ".join(README_MAIN_COMMAND)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium_browser: object) -> Iterator[LabServer]:
    """One server for the module, started by the README's command from the repository root."""
    with run_lab(
        README_MAIN_COMMAND,
        root_dir=REPO / "notebooks",
        state_dir=tmp_path_factory.mktemp("jupyter-state"),
        cwd=REPO,
        append_args=False,  # exactly as a user types it; port and token come from the config
        startup_timeout=240.0,  # `make lab` first brings the environment up to date
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_kernels(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "lab" in request.fixturenames:
        request.getfixturevalue("lab").shut_down_kernels()


def _charts_expected(notebook: Path) -> bool:
    sources = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    return any("wb." in source and "fig" in source for source in sources)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_each_notebook_runs_in_the_browser(lab: LabServer, page: Page, screenshot_dir: Path, notebook: Path) -> None:
    from playwright.sync_api import expect

    panel = open_notebook(page, lab, notebook.name)
    try:
        run_all_cells(page, lab, timeout_ms=240_000)
        errors = [e for e in error_outputs(page) if "Traceback" in e or "Error" in e]
        assert not errors, f"{notebook.name} shows errors:\n" + "\n---\n".join(errors)
        if _charts_expected(notebook):
            expect(panel.locator(".js-plotly-plot svg.main-svg").first).to_be_visible()
            assert panel.locator(".js-plotly-plot g.trace").count() > 0, "charts drew no data"
    finally:
        save_screenshot(page, screenshot_dir / f"{notebook.stem}.png")


def test_time_travel_slider_and_progress_bar(lab: LabServer, page: Page, screenshot_dir: Path) -> None:
    """Notebook 4: the simulation's progress bar completes, and moving the version slider by
    hand changes the member state on show."""
    from playwright.sync_api import expect

    name = "04_rebuild_state_and_travel_in_time.ipynb"
    panel = open_notebook(page, lab, name)
    try:
        run_all_cells(page, lab, timeout_ms=240_000)
        done = page.locator(".widget-hprogress .progress-bar-success")
        expect(panel.locator(".widget-hbox").filter(has=done).first).to_contain_text(re.compile(r"100%"))

        slider = panel.locator(".widget-hslider").filter(has_text="at version").first
        handle = slider.locator("[role=slider]")
        before = int(handle.get_attribute("aria-valuetext") or "0")
        view = panel.locator(".widget-html-content").filter(has_text=f"version {before}").first
        expect(view).to_be_visible()
        shown_before = view.inner_text()
        handle.focus()
        handle.press("ArrowLeft" if before > 1 else "ArrowRight")
        after = before - 1 if before > 1 else before + 1
        expect(handle).to_have_attribute("aria-valuetext", str(after))
        changed = panel.locator(".widget-html-content").filter(has_text=f"version {after}").first
        expect(changed).to_be_visible(timeout=30_000)  # a kernel round trip rebuilt the state
        assert changed.inner_text() != shown_before
    finally:
        save_screenshot(page, screenshot_dir / "04_slider_moved.png")
