"""The workbench as its users meet it: the README's main command (`make lab`), typed exactly,
serves the notebooks; headless Chromium runs every notebook through the JupyterLab UI and
checks what a person would see. Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import json
import os
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

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


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
        run_all_cells(page, lab, timeout_ms=600_000)
        errors = [e for e in error_outputs(page) if "Traceback" in e or "Error" in e]
        assert not errors, f"{notebook.name} shows errors:\n" + "\n---\n".join(errors)
        if _charts_expected(notebook):
            expect(panel.locator(".js-plotly-plot svg.main-svg").first).to_be_visible()
            assert panel.locator(".js-plotly-plot g.trace").count() > 0, "charts drew no data"
    finally:
        save_screenshot(page, screenshot_dir / f"{notebook.stem}_{'small' if _small() else 'full'}.png")


def test_time_travel_slider_and_progress_bar(lab: LabServer, page: Page, screenshot_dir: Path) -> None:
    """Notebook 4: the simulation's progress bar completes; moving the version slider by hand
    redraws *that* control (its heading names the new version), moves the other slider and the
    timeline's marker, and shows no error. Run by CI in small mode and at full size."""
    from playwright.sync_api import expect

    name = "04_rebuild_state_and_travel_in_time.ipynb"
    panel = open_notebook(page, lab, name)
    try:
        run_all_cells(page, lab, timeout_ms=480_000)
        done = page.locator(".widget-hprogress .progress-bar-success")
        expect(panel.locator(".widget-hbox").filter(has=done).first).to_contain_text(re.compile(r"100%"))

        control = panel.locator(".es-time-travel").first  # the notebook's own (exercise 3 shows another)
        control.scroll_into_view_if_needed()
        heading = control.locator(".widget-html-content").first
        version = control.locator(".widget-hslider").filter(has_text="at version").locator("[role=slider]")
        moment = control.locator(".widget-hslider").filter(has_text="as of").locator("[role=slider]")
        before = int(version.get_attribute("aria-valuetext") or "0")
        expect(heading).to_contain_text(f"at version {before} of ")
        expect(control.locator(".js-plotly-plot g.trace").first).to_be_attached()  # the timeline drew data
        marker_before = control.locator(".shapelayer path").first.get_attribute("d") or ""
        moment_before = moment.get_attribute("aria-valuetext")

        version.focus()
        version.press("End")  # to the member's latest version, months after the one shown
        expect(version).not_to_have_attribute("aria-valuetext", str(before))
        latest = int(version.get_attribute("aria-valuetext") or "0")
        assert latest > before
        expect(heading).to_contain_text(f"at version {latest} of {latest}", timeout=60_000)  # a kernel round trip
        expect(moment).not_to_have_attribute("aria-valuetext", moment_before or "")  # the other slider followed
        expect(control.locator(".shapelayer path").first).not_to_have_attribute("d", marker_before)  # and the marker
        version.press("Home")  # to version 0: before the member's first event
        expect(heading).to_contain_text(re.compile(r"at version 0 of \d+"), timeout=60_000)
        expect(moment).to_have_attribute("aria-valuetext", "0")  # "before v1"
        assert "Could not redraw" not in control.inner_text()
    finally:
        save_screenshot(page, screenshot_dir / f"04_slider_moved_{'small' if _small() else 'full'}.png")


def _small() -> bool:
    return os.environ.get("ES_SMALL", "").strip().lower() in ("1", "true", "yes", "on")
