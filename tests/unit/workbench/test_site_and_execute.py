"""The site's pieces without Sphinx: the chapter list, notebooks made static, the link and
offline checks; and when an execution may be reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench import execute, site
from workbench.plotting import PLOTLYJS_METADATA


def test_chapters_follow_the_readme_in_order_under_their_headings(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Workshop\n\n## The core path\n\n| 1 | [One](01_one.ipynb) | ... |\n| 2 | [Two](02_two.ipynb) |\n\n"
        "See [one](01_one.ipynb) again.\n\n## Optional chapters\n\n| 9 | [Nine](09_nine.ipynb) |\n"
    )
    found = site.chapters(readme)
    assert [(c.path.name, c.title, c.part) for c in found] == [
        ("01_one.ipynb", "One", "The core path"),
        ("02_two.ipynb", "Two", "The core path"),
        ("09_nine.ipynb", "Nine", "Optional chapters"),
    ]


def _output(data: dict, metadata: dict | None = None) -> dict:  # type: ignore[type-arg]
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def test_prepare_notebook_drops_plotlyjs_keeps_figure_html_and_pictures_widgets() -> None:
    progress = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_bar"]}},
        "left": {"model_name": "HTMLModel", "state": {"value": "simulating: 100%"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 365, "max": 365}},
    }
    notebook = {
        "metadata": {"widgets": {site.WIDGET_STATE: {"state": progress}}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    _output({"text/html": "<script>plotly.js</script>"}, PLOTLYJS_METADATA),
                    _output({site.PLOTLY_MIME: {"data": []}, "text/html": "<div>figure</div>"}),
                    _output({site.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "HBox(...)"}),
                    _output({site.WIDGET_VIEW: {"model_id": "gone"}, "text/plain": "HBox(...)"}),
                    _output({site.WIDGET_VIEW: {"model_id": "x"}, "text/html": "<div>fallback</div>"}),
                ],
            },
            {"cell_type": "markdown", "source": "text"},
        ],
    }
    prepared = site.prepare_notebook(notebook)
    outputs = prepared["cells"][0]["outputs"]
    assert [sorted(o["data"]) for o in outputs] == [["text/html"], ["text/html", "text/plain"], ["text/html"]]
    assert outputs[0]["data"]["text/html"] == "<div>figure</div>"
    assert "simulating: 100%" in outputs[1]["data"]["text/html"]
    assert '<progress value="365" max="365"' in outputs[1]["data"]["text/html"]
    assert outputs[2]["data"]["text/html"] == "<div>fallback</div>"
    assert "widgets" not in prepared["metadata"], "no widget manager is asked for"


def test_check_site_finds_broken_links_missing_anchors_and_network_resources(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="docs/page.html#here">ok</a><a href="docs/page.html#nowhere">bad anchor</a>'
        '<a href="missing.html">bad</a><a href="https://example.org/">outside</a>'
        '<script src="_static/local.js"></script><script src="https://cdn.example.org/x.js"></script>'
    )
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "local.js").write_text("")
    (tmp_path / "docs" / "page.html").write_text('<h1 id="here">Here</h1><a href="../index.html">back</a>')
    broken, network = site.check_site(tmp_path)
    assert broken == ["index.html: docs/page.html#nowhere (no such anchor)", "index.html: missing.html (no such file)"]
    assert network == ["index.html: loads https://cdn.example.org/x.js"]


def test_an_execution_is_reused_only_while_its_inputs_are_unchanged(tmp_path: Path) -> None:
    notebook = tmp_path / "01_probe.ipynb"
    cell = {"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
            "source": "import os\nprint(os.environ.get('ES_SMALL'))"}  # fmt: skip
    body = {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
            "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    notebook.write_text(json.dumps(body))
    first = execute.execute_notebook(notebook, small=True, out_root=tmp_path / "runs")
    assert first.ok and not first.reused
    printed = "".join(json.loads(first.output.read_text())["cells"][0]["outputs"][0]["text"])
    assert printed.strip() == "1", "the kernel ran in small mode"
    assert execute.execute_notebook(notebook, small=True, out_root=tmp_path / "runs").reused
    cell["source"] = "raise ValueError('broken')"
    notebook.write_text(json.dumps(body))
    failed = execute.execute_notebook(notebook, small=True, out_root=tmp_path / "runs")
    assert not failed.reused and not failed.ok and "broken" in (failed.error or "")
    again = execute.execute_notebook(notebook, small=True, out_root=tmp_path / "runs")
    assert not again.reused, "a failed run is never reused"


@pytest.mark.parametrize("small", [True, False])
def test_the_inputs_key_depends_on_the_mode_and_the_store(small: bool) -> None:
    notebook = execute.notebook_paths()[0]
    key = execute.inputs_key(notebook, small=small)
    assert key == execute.inputs_key(notebook, small=small)
    assert key != execute.inputs_key(notebook, small=not small)
    assert key != execute.inputs_key(notebook, small=small, store_url="memory://")
