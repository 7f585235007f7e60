"""Fixtures for end-to-end tests: a JupyterLab server and headless Chromium.

The browser is the system Chromium (``scripts/install-browser``); Playwright
is only used as a driver and never downloads browsers. Tests skip, saying how
to enable them, when either is missing, and fail instead under
``ES_REQUIRE_BROWSER=1`` (strict runs of ``scripts/run-tests``). Override the
browser path with ``ES_CHROMIUM``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

try:
    from .lab import LabServer, require_module, run_lab, unavailable
except ImportError:  # imported as a top-level module (no tests/e2e/__init__.py)
    from lab import LabServer, require_module, run_lab, unavailable  # type: ignore[no-redef]

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("ES_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # required when running as root
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers crashes tabs
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A laptop's screen: what the screenshots show and the layout is checked at.
LAPTOP = {"width": 1280, "height": 800}
# Playwright's per-action/expectation timeout; keeps a hung UI from eating the run.
UI_TIMEOUT_MS = 30_000

LabFactory = Callable[..., LabServer]


def pytest_configure(config: pytest.Config) -> None:
    # Keeps --strict-markers happy should pytest-timeout be missing.
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): per-test time limit (pytest-timeout)")


def jupyter_executable() -> str:
    """The ``jupyter`` next to the running interpreter (the project venv)."""
    candidate = Path(sys.executable).parent / "jupyter"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("jupyter")
    if found is None:
        unavailable("jupyter not installed; install jupyterlab into the venv")
    return found


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no Chromium at {CHROMIUM}; run scripts/install-browser to enable e2e tests")
    sync_api = require_module(
        "playwright.sync_api", "pip install playwright (never `playwright install`: the system Chromium is used)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium_browser: Browser) -> Iterator[Page]:
    """A fresh browser tab; console errors are kept on ``page.console_errors``."""
    context = chromium_browser.new_context(viewport=LAPTOP)
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    tab.console_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def offline_page(page: Page) -> Iterator[Page]:
    """A tab that may load files only: any other request is refused and kept on
    ``page.refused`` (a page that needs the network to show itself fails its test)."""
    refused: list[str] = []

    def only_files(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.refused = refused  # type: ignore[attr-defined]
    yield page


@pytest.fixture
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """Start JupyterLab servers that are stopped at test end.

    ``lab_factory(root_dir)`` runs ``jupyter lab ROOT_DIR`` with the server
    flags appended. To test the documented command verbatim, pass it, e.g.
    ``lab_factory(REPO_ROOT / "notebooks", command=["make", "lab"],
    cwd=REPO_ROOT, append_args=False)``; see ``lab.py`` for how the port and
    token reach the server then.
    """
    with ExitStack() as stack:

        def start(
            root_dir: Path,
            *,
            command: Sequence[str] | None = None,
            cwd: Path | None = None,
            append_args: bool = True,
            startup_timeout: float = 60.0,
        ) -> LabServer:
            argv = list(command) if command else [jupyter_executable(), "lab", str(root_dir)]
            manager: AbstractContextManager[LabServer] = run_lab(
                argv,
                root_dir=root_dir,
                state_dir=tmp_path_factory.mktemp("jupyter-state"),
                cwd=cwd,
                append_args=append_args,
                startup_timeout=startup_timeout,
            )
            return stack.enter_context(manager)

        yield start


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
