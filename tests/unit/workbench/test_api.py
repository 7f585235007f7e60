"""The helper package's public surface, and the direction of dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import workbench
from workbench.settings import PROJECT_ROOT


def test_all_is_sorted_complete_and_importable() -> None:
    names = workbench.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n[0].islower(), n))
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(workbench, name), name


def test_the_core_and_the_domain_never_import_the_helpers() -> None:
    for package in ("es_core", "downloads"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            tree = ast.parse(Path(path).read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    modules = [node.module or ""]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    assert top not in ("workbench", "IPython", "ipywidgets", "plotly", "pandas"), f"{path}: {module}"
