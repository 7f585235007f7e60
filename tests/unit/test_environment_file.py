"""environment.yml describes the same environment as pyproject.toml: same pins, nothing missing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.update(extra)
    return {_normalise(r) for r in reqs}


def _environment_requirements() -> tuple[str, set[str]]:
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python=(\S+)", text, re.M)
    assert python, "environment.yml pins no python"
    pip_lines = re.findall(r"^\s{6}-\s*(\S.*?)\s*$", text, re.M)
    return python.group(1), {_normalise(line) for line in pip_lines if line != "-e ."}


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_lists_exactly_the_pyproject_dependencies() -> None:
    _, env = _environment_requirements()
    assert env == _pyproject_requirements()


def test_environment_yml_python_satisfies_requires_python() -> None:
    python, _ = _environment_requirements()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split(".")))


def test_environment_yml_installs_the_project_itself() -> None:
    assert re.search(r"^\s{6}-\s*-e \.\s*$", (ROOT / "environment.yml").read_text(), re.M)
