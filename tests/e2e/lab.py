"""Start and stop a JupyterLab server for browser tests.

Two ways to hand the server its port/token, so a test can run the very
command the README documents:

* ``append_args=True`` (default): the command is a prefix such as
  ``["jupyter", "lab", "notebooks/"]`` and the launcher appends
  ``--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=P
  --ServerApp.port_retries=0 --IdentityProvider.token=T`` (plus
  ``--allow-root`` when running as root).
* ``append_args=False``: the command is run verbatim (e.g. ``["make", "lab"]``
  from the repository root), so nothing about it differs from what users type.
  The same settings then reach the server only through
  ``jupyter_server_config.json`` in a private ``JUPYTER_CONFIG_DIR``, which
  Jupyter reads whatever wrapper started it.

The config file is written in both modes; it also keeps the test independent
of the user's own ``~/.jupyter`` settings, workspaces and kernels.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

LOOPBACK = "127.0.0.1"

# JupyterLab user settings applied to the private settings dir.
LAB_SETTINGS: dict[str, dict[str, object]] = {
    # Attach every cell to the DOM so selectors see the whole notebook and
    # off-screen plots get laid out (the default defers off-screen cells).
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No "fetch Jupyter news?" toast over the page (and no outbound request).
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    # Running cells dirties the notebook; never write it back to the repo.
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab server."""

    process: subprocess.Popen[bytes]
    port: int
    token: str
    root_dir: Path
    log_path: Path
    command: tuple[str, ...]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL for ``path`` (e.g. ``/lab/tree/x.ipynb``) with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{sep}token={self.token}"

    def notebook_url(self, notebook: Path | str) -> str:
        rel = Path(notebook)
        if rel.is_absolute():
            rel = rel.relative_to(self.root_dir)
        # ?reset: start from an empty workspace, so notebooks opened by earlier tests are not restored
        return self.url(f"/lab/tree/{rel.as_posix()}?reset")

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> object:
        """Call the server's REST API and return the decoded JSON (or None)."""
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session, so a later notebook's "all kernels idle" check sees only its own."""
        sessions = self.api("/api/sessions")
        for session in sessions if isinstance(sessions, list) else []:
            self.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30.0)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])


def unavailable(message: str) -> NoReturn:
    """Skip, or fail when ``ES_REQUIRE_BROWSER=1`` (strict runs must not skip)."""
    if os.environ.get("ES_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} (ES_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def require_module(name: str, hint: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        unavailable(f"{name} not importable; {hint}")


def free_port() -> int:
    """A loopback port that is free right now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def server_args(port: int, token: str) -> list[str]:
    """Command-line flags appended in ``append_args`` mode."""
    args = [
        "--no-browser",
        f"--ServerApp.ip={LOOPBACK}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    if _is_root():
        args.append("--allow-root")
    return args


def isolated_env(state_dir: Path, port: int, token: str) -> dict[str, str]:
    """Environment with private Jupyter dirs and a config carrying port/token."""
    config_dir = state_dir / "config"
    settings_dir = state_dir / "lab-settings"
    for sub in ("config", "data", "runtime", "lab-settings", "workspaces", "ipython"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)

    server_config = {
        "ServerApp": {
            "ip": LOOPBACK,
            "port": port,
            "port_retries": 0,
            "open_browser": False,
            "allow_root": _is_root(),
        },
        "IdentityProvider": {"token": token},
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server_config, indent=1))

    for plugin, values in LAB_SETTINGS.items():
        target = settings_dir / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))

    env = dict(os.environ)
    # The interpreter running the tests owns jupyter; wrappers (make) find it first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_DATA_DIR": str(state_dir / "data"),
            "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces"),
            "IPYTHONDIR": str(state_dir / "ipython"),
            # Also honoured by jupyter_server itself; harmless duplicates.
            "JUPYTER_PORT": str(port),
            "JUPYTER_TOKEN": token,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@contextmanager
def run_lab(
    command: Sequence[str],
    *,
    root_dir: Path,
    state_dir: Path,
    cwd: Path | None = None,
    append_args: bool = True,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[LabServer]:
    """Run ``command`` as a JupyterLab server until the block exits.

    ``root_dir`` is where the command serves notebooks from (used to build
    URLs); ``cwd`` defaults to it. Waits until ``/api/status`` answers.
    """
    port = free_port()
    token = secrets.token_hex(16)
    env = isolated_env(state_dir, port, token)
    if extra_env:
        env.update(extra_env)
    argv = [*command, *(server_args(port, token) if append_args else [])]
    log_path = state_dir / "jupyterlab.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=cwd or root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: teardown also reaches a wrapper's children.
            start_new_session=True,
        )
    server = LabServer(process, port, token, root_dir.resolve(), log_path, tuple(argv))
    try:
        _wait_ready(server, startup_timeout)
        yield server
    finally:
        stop_lab(server)


def _wait_ready(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {server.process.returncode}: "
                f"{' '.join(server.command)}\n{server.log_tail()}"
            )
        try:
            server.api("/api/status", timeout=2.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = exc
        time.sleep(0.25)
    raise TimeoutError(
        f"JupyterLab did not answer /api/status within {timeout:.0f}s "
        f"({last_error}): {' '.join(server.command)}\n{server.log_tail()}"
    )


def stop_lab(server: LabServer, grace: float = 15.0) -> None:
    """Shut the server down, kernels included; escalate to signals if needed."""
    process = server.process
    if process.poll() is None:
        # The API shutdown stops kernels too; a signal to the group would not
        # reach them (kernels run in sessions of their own).
        try:
            server.api("/api/shutdown", method="POST", timeout=5.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # A wrapper (make) may exit before the server it started; sweep the group.
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# --- Browser side -----------------------------------------------------------

NOTEBOOK = ".jp-NotebookPanel:visible"
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
# Texts JupyterLab / ipywidgets show instead of an output they cannot render.
RENDER_FAILURES = (
    "Error displaying widget",
    "Failed to load model class",
    "No renderer could be found",
    "Javascript Error",
)

# Counts prompts still queued or running ("[*]:"); `seen` says whether any
# were ever observed, so a check right after the click cannot pass early.
_WATCH_PROMPTS_JS = """() => {
    const busy = () => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
        .filter(p => p.textContent.includes('*')).length;
    window.__esRun = {seen: busy() > 0, busy};
    new MutationObserver(() => { if (busy() > 0) window.__esRun.seen = true; })
        .observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
_RUN_FINISHED_JS = "() => window.__esRun.seen && window.__esRun.busy() === 0"


def open_notebook(page: Page, server: LabServer, notebook: Path | str, timeout_ms: int = 60_000) -> Locator:
    """Open ``notebook`` in JupyterLab and wait until its kernel is idle."""
    page.goto(server.notebook_url(notebook), timeout=timeout_ms)
    panel = page.locator(NOTEBOOK)
    panel.wait_for(timeout=timeout_ms)
    wait_kernel_idle(page, server, timeout_ms)
    return panel


def wait_kernel_idle(page: Page, server: LabServer, timeout_ms: int = 60_000) -> None:
    """Wait until the notebook's kernel is started, connected and idle.

    The toolbar indicator alone is not enough: it reads "idle" for a moment
    before any kernel exists, and cells run then are silently dropped. So the
    server must also report a connected, idle kernel, twice in a row.
    """
    indicator = page.locator(f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + timeout_ms / 1000
    streak = 0
    while time.monotonic() < deadline:
        ui_idle = indicator.get_attribute("data-status") == "idle"
        streak = streak + 1 if ui_idle and _server_kernels_idle(server) else 0
        if streak >= 2:
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"kernel not idle after {timeout_ms / 1000:.0f}s; sessions: {server.api('/api/sessions')}")


def _server_kernels_idle(server: LabServer) -> bool:
    sessions = server.api("/api/sessions")
    kernels = [s["kernel"] for s in sessions if s.get("kernel")] if isinstance(sessions, list) else []
    return bool(kernels) and all(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels)


def click_menu(page: Page, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then the entry labelled ``item``."""
    page.locator(".lm-MenuBar-itemLabel").filter(has_text=_exact(menu)).click()
    page.locator(".lm-Menu-itemLabel").filter(has_text=_exact(item)).click()


def run_all_cells(page: Page, server: LabServer, timeout_ms: int = 120_000) -> float:
    """Run > Run All Cells, wait for completion; returns seconds taken.

    Done means no cell prompt shows ``[*]`` any more (JupyterLab clears the
    queue after an error as well) and the kernel is idle again.
    """
    start = time.monotonic()
    page.evaluate(_WATCH_PROMPTS_JS)
    click_menu(page, "Run", "Run All Cells")
    page.wait_for_function(_RUN_FINISHED_JS, timeout=timeout_ms, polling=100)
    wait_kernel_idle(page, server, timeout_ms)
    return time.monotonic() - start


def error_outputs(page: Page) -> list[str]:
    """Texts of stderr/traceback outputs and of outputs that failed to render."""
    texts = [t.strip() for t in page.locator(f"{NOTEBOOK} {STDERR_OUTPUT}").all_inner_texts()]
    outputs = page.locator(f"{NOTEBOOK} .jp-OutputArea-output").all_inner_texts()
    texts += [t.strip() for t in outputs if any(marker in t for marker in RENDER_FAILURES)]
    return texts


def save_screenshot(page: Page, path: Path, max_height: int = 12_000) -> Path:
    """Screenshot of the whole notebook, not just the visible part.

    JupyterLab scrolls inside the notebook panel, so a "full page" shot only
    shows the viewport; grow the viewport to fit the notebook first.
    """
    needed = page.evaluate(
        """() => {
            const scroller = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
            if (!scroller) return window.innerHeight;
            return window.innerHeight - scroller.clientHeight + scroller.scrollHeight;
        }"""
    )
    viewport = page.viewport_size or {"width": 1400, "height": 1000}
    height = min(max(int(needed), viewport["height"]), max_height)
    if height != viewport["height"]:
        page.set_viewport_size({"width": viewport["width"], "height": height})
        page.wait_for_timeout(500)  # let JupyterLab and plots re-layout
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def _exact(text: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*{re.escape(text)}\s*$")
