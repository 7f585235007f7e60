"""Run notebooks top to bottom once and keep what they printed and drew.

The notebook tests, ``make docs`` and ``make tour`` share these executions: each is saved under
``artifacts/executed/<mode>/`` beside a small record of what it ran on (a key over the
notebook, the project's code and data, and the mode), and a later caller reuses it while that
key still matches and the run passed. A failed run is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from .settings import PROJECT_ROOT

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
EXECUTED_DIR = PROJECT_ROOT / "artifacts" / "executed"
# what a notebook's outputs depend on besides itself (data/local holds the stores they write)
INPUTS = ("es_core", "downloads", "workbench", "data")
SKIPPED_PARTS = {"local", "__pycache__", ".ipynb_checkpoints"}


@dataclass
class Execution:
    """One notebook run (or a reused one): where the executed copy is, and how it went."""

    notebook: Path
    output: Path
    small: bool
    seconds: float
    reused: bool
    error: str | None = None  # the failing cell's error and traceback, when it failed

    @property
    def ok(self) -> bool:
        return self.error is None


def notebook_paths(pattern: str = "[0-9][0-9]_*.ipynb") -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob(pattern))


def mode_dir(small: bool, root: Path = EXECUTED_DIR) -> Path:
    return root / ("small" if small else "full")


def inputs_key(notebook: Path, *, small: bool, store_url: str | None = None) -> str:
    """A digest of everything the notebook's outputs depend on: itself, the project's code and
    data, the mode and the store it writes to."""
    digest = hashlib.sha256()
    digest.update(f"small={small};store={store_url or ''}\n".encode())
    digest.update(notebook.read_bytes())
    for folder in INPUTS:
        for path in sorted((PROJECT_ROOT / folder).rglob("*")):
            if path.is_file() and not SKIPPED_PARTS & set(path.relative_to(PROJECT_ROOT).parts):
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block; kernels started inside
    it inherit them."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_notebook(
    notebook: Path,
    *,
    small: bool = True,
    out_root: Path = EXECUTED_DIR,
    reuse: bool = True,
    timeout: int = 900,
) -> Execution:
    """Run ``notebook`` in a fresh kernel (small mode unless ``small=False``), save the executed
    copy, and return how it went; reuse an earlier passing run of the same inputs."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    out_dir = mode_dir(small, out_root)
    out_dir.mkdir(parents=True, exist_ok=True)
    output, record_path = out_dir / notebook.name, out_dir / f"{notebook.stem}.json"
    key = inputs_key(notebook, small=small, store_url=os.environ.get("ES_STORE_URL"))
    if reuse and output.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("key") == key and record.get("error") is None:
            return Execution(notebook, output, small, record["seconds"], reused=True)

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    error = None
    started = time.perf_counter()
    with environment(ES_SMALL="1" if small else None):
        try:
            client.execute()
        except CellExecutionError as exc:
            error = str(exc)
    seconds = round(time.perf_counter() - started, 2)
    nbformat.write(nb, output)
    result = Execution(notebook, output, small, seconds, reused=False, error=error)
    record = {**asdict(result), "key": key, "notebook": str(notebook), "output": str(output)}
    record_path.write_text(json.dumps(record, indent=1))
    return result


def execute_all(
    notebooks: Sequence[Path] | None = None,
    *,
    small: bool = True,
    reuse: bool = True,
    out_root: Path = EXECUTED_DIR,
    say: Callable[[str], None] = print,
) -> list[Execution]:
    """Run (or reuse) each notebook in turn, saying how each went."""
    results = []
    for path in notebook_paths() if notebooks is None else notebooks:
        result = execute_notebook(path, small=small, reuse=reuse, out_root=out_root)
        how = "reused" if result.reused else f"ran in {result.seconds:.1f} s"
        status = "ok" if result.ok else "FAILED"
        say(f"{status:6} {path.name} ({how})")
        results.append(result)
    return results


def cell_seconds(executed: Path) -> list[float]:
    """Seconds each code cell of an executed notebook took (from the timings nbclient records)."""
    from datetime import datetime

    cells = json.loads(executed.read_text())["cells"]
    seconds = []
    for cell in cells:
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell["cell_type"] == "code" and start and end:
            seconds.append((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    return seconds
