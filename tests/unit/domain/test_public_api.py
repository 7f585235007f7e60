"""The package's public face: a sorted ``__all__`` of importable names, and a domain that
imports no notebook library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import downloads

PACKAGE = Path(downloads.__file__).parent


def test_all_is_sorted_and_importable() -> None:
    names = list(downloads.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))
    assert len(set(names)) == len(names)
    for name in names:
        assert getattr(downloads, name) is not None


def test_the_domain_imports_no_notebook_library() -> None:
    code = (
        "import sys, downloads, downloads.cli\n"
        "bad = [m for m in ('pandas', 'plotly', 'ipywidgets', 'tqdm', 'yaml') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
    for path in PACKAGE.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for library in ("pandas", "plotly", "ipywidgets"):
            assert f"import {library}" not in text and f"from {library}" not in text, path.name
        if path.name != "cli.py":
            assert "tqdm" not in text, path.name
