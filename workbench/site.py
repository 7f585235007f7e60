"""The documentation site: the README, the ``docs/`` pages, the workshop's notebooks as they
ran in small mode, and an API reference from the docstrings of ``es_core`` and ``downloads``,
built with Sphinx and MyST-NB into ``artifacts/site/`` (``make docs``).

The workshop's chapters come from one list, the tables of ``notebooks/README.md``: a notebook
joins the site (and the workshop) by a row there. The build runs every listed notebook through
:mod:`workbench.execute` (reusing the tests' runs), assembles a source tree under
``artifacts/site-src/``, and fails on any Sphinx warning, on a link inside the site that leads
nowhere, and on a page that would fetch anything from the network to display.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .execute import NOTEBOOKS_DIR, Execution, execute_all
from .plotting import PLOTLYJS_METADATA
from .settings import PROJECT_ROOT

WORKSHOP_README = NOTEBOOKS_DIR / "README.md"
SITE_CONFIG = PROJECT_ROOT / "docs" / "site"
SOURCE_DIR = PROJECT_ROOT / "artifacts" / "site-src"
SITE_DIR = PROJECT_ROOT / "artifacts" / "site"
GUIDES = ("domain.md", "subscriptions.md", "scaleout.md", "cassandra.md", "reliability.md")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Chapter:
    """One notebook of the workshop, as its README lists it."""

    path: Path
    title: str
    part: str  # the README heading the row sits under, e.g. "The core path"


def chapters(readme: Path = WORKSHOP_README) -> list[Chapter]:
    """The notebooks the workshop README links to, in its order, each under its ``##`` heading."""
    found: list[Chapter] = []
    part = ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            part = line[3:].strip()
        for title, target in re.findall(r"\[([^\]]+)\]\(([0-9][0-9]_[^)]+\.ipynb)\)", line):
            path = readme.parent / target
            if path not in {c.path for c in found}:
                found.append(Chapter(path, title, part))
    return found


# -- preparing executed notebooks for the site --------------------------------------------------


def _widget_html(model_id: str, models: dict[str, Any]) -> str:
    """A static picture of a widget from its saved state: boxes, HTML, labels, progress bars and
    sliders (enough for the progress bars and controls the notebooks show)."""
    model = models.get(model_id.removeprefix("IPY_MODEL_"))
    if model is None:
        return ""
    name, state = model.get("model_name", ""), model.get("state", {})
    if name in ("HBoxModel", "VBoxModel", "BoxModel"):
        direction = "column" if name == "VBoxModel" else "row"
        inner = "".join(_widget_html(child, models) for child in state.get("children", []))
        return f'<div style="display: flex; flex-direction: {direction}; gap: 6px; align-items: center">{inner}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return f"<span>{state.get('value', '')}</span>"
    if name == "LabelModel":
        return f"<span>{html.escape(str(state.get('value', '')))}</span>"
    if name in ("FloatProgressModel", "IntProgressModel"):
        value, top = state.get("value", 0), state.get("max", 100)
        return f'<progress value="{value}" max="{top}" style="width: 16em"></progress>'
    if name.endswith("SliderModel"):
        labels = state.get("_options_labels")
        value = labels[state.get("index", 0)] if labels else state.get("value", "")
        return f"<span>{html.escape(str(state.get('description', '')))}: {html.escape(str(value))}</span>"
    return ""


def prepare_notebook(notebook: dict[str, Any]) -> dict[str, Any]:
    """An executed notebook made fit for a static site: plotly.js outputs dropped (the site
    serves one copy), figures reduced to their HTML, widgets replaced by the HTML they carry
    or a picture of their saved state, and the saved widget state removed (no widget manager
    is loaded)."""
    widgets = notebook.get("metadata", {}).pop("widgets", {})
    models = widgets.get(WIDGET_STATE, {}).get("state", {})
    for cell in notebook["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("metadata") == PLOTLYJS_METADATA:
                continue
            data = output.get("data", {})
            if "text/html" in data:
                data.pop(PLOTLY_MIME, None)  # the site draws figures from their HTML
            if WIDGET_VIEW in data:
                view = data.pop(WIDGET_VIEW)
                if "text/html" not in data:
                    picture = _widget_html(view.get("model_id", ""), models)
                    if not picture:
                        continue
                    data["text/html"] = picture
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return notebook


# -- assembling the source tree -----------------------------------------------------------------


def _index(chapter_list: list[Chapter]) -> str:
    parts: dict[str, list[Chapter]] = {}
    for chapter in chapter_list:
        parts.setdefault(chapter.part, []).append(chapter)
    toctrees = []
    for part, members in parts.items():
        part = part or "Workshop"
        entries = "\n".join(f"notebooks/{c.path.stem}" for c in members)
        toctrees.append(f"```{{toctree}}\n:caption: {part}\n:maxdepth: 1\n\n{entries}\n```")
    guides = "\n".join(f"docs/{Path(g).stem}" for g in GUIDES)
    return "\n\n".join(
        [
            "# es-workbench",
            "An event-sourcing workbench built on the licence accounting behind Netflix downloads: "
            "an event store core (`es_core`), the downloads domain (`downloads`), and a workshop "
            "of notebooks. Start with the [overview](README.md) or the [workshop](notebooks/README.md).",
            "```{toctree}\n:caption: Overview\n:maxdepth: 1\n\nREADME\nnotebooks/README\n```",
            *toctrees,
            f"```{{toctree}}\n:caption: Guides\n:maxdepth: 1\n\n{guides}\n```",
            "```{toctree}\n:caption: Reference\n:maxdepth: 2\n\napi/index\n```",
        ]
    )


def assemble(executions: Iterable[Execution], chapter_list: list[Chapter], source: Path = SOURCE_DIR) -> Path:
    """Lay out the site's source tree: configuration, pages, prepared notebooks, plotly.js."""
    from plotly.offline import get_plotlyjs

    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(SITE_CONFIG, source)
    (source / "docs").mkdir()
    (source / "notebooks").mkdir()
    static = source / "_static"
    static.mkdir(exist_ok=True)
    (static / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    shutil.copy(PROJECT_ROOT / "README.md", source / "README.md")
    for guide in GUIDES:
        shutil.copy(PROJECT_ROOT / "docs" / guide, source / "docs" / guide)
    shutil.copy(WORKSHOP_README, source / "notebooks" / "README.md")
    for result in executions:
        notebook = prepare_notebook(json.loads(result.output.read_text(encoding="utf-8")))
        (source / "notebooks" / result.notebook.name).write_text(json.dumps(notebook), encoding="utf-8")
    (source / "index.md").write_text(_index(chapter_list) + "\n", encoding="utf-8")
    return source


# -- building and checking ------------------------------------------------------------------------


@dataclass
class SiteReport:
    """What the build produced and every problem found (an empty ``problems`` is a pass)."""

    site: Path
    pages: int = 0
    warnings: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.warnings + self.broken_links + self.network


class _References(HTMLParser):
    """The links, resources and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        elif tag in ("script", "img", "iframe", "source") and values.get("src"):
            self.resources.append(str(values["src"]))
        elif tag == "link" and values.get("href"):
            self.resources.append(str(values["href"]))


def check_site(site: Path) -> tuple[list[str], list[str]]:
    """Links inside the site that lead to no file (or no element id), and resources a page would
    fetch from the network."""
    pages: dict[Path, _References] = {}
    for page in sorted(site.rglob("*.html")):
        parser = _References()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = parser
    broken, network = [], []
    for page, refs in pages.items():
        name = page.relative_to(site.resolve())
        for resource in refs.resources:
            if urlsplit(resource).scheme in ("http", "https") or resource.startswith("//"):
                network.append(f"{name}: loads {resource}")
        for link in refs.links + refs.resources:
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{name}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and target in pages:
                if unquote(parts.fragment) not in pages[target].ids:
                    broken.append(f"{name}: {link} (no such anchor)")
    return broken, network


def build(source: Path = SOURCE_DIR, site: Path = SITE_DIR) -> SiteReport:
    """Run Sphinx on ``source`` (every warning is a problem), then check the built site."""
    if site.exists():
        shutil.rmtree(site)
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-q",
        "-d",
        str(source / "_doctrees"),
        str(source),
        str(site),
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    report = SiteReport(site)
    report.warnings = [line for line in run.stderr.splitlines() if line.strip()]
    if run.returncode != 0 and not report.warnings:
        report.warnings = [f"sphinx exited with {run.returncode}"]
    if site.exists():
        report.pages = sum(1 for _ in site.rglob("*.html"))
        report.broken_links, report.network = check_site(site)
    return report


def build_site(*, reuse: bool = True, say: Say = print) -> SiteReport:
    """``make docs``: run (or reuse) the workshop's notebooks in small mode, assemble, build, check."""
    chapter_list = chapters()
    say(f"== notebooks ({len(chapter_list)} chapters, small mode)")
    results = execute_all([c.path for c in chapter_list], small=True, reuse=reuse, say=say)
    failed = [r for r in results if not r.ok]
    if failed:
        report = SiteReport(SITE_DIR)
        report.warnings = [f"{r.notebook.name} failed:\n{r.error}" for r in failed]
        return report
    say("== sphinx")
    return build(assemble(results, chapter_list))
