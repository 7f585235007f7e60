"""Plotly figures that survive every export of a notebook.

JupyterLab draws a figure from plotly's own mimetype, which no HTML export understands: a
plain ``jupyter nbconvert --to html`` or JupyterLab's *Export as HTML* would drop every chart.
The ``workbench`` renderer registered here answers with both: the mimetype for JupyterLab, and
an HTML ``<div>`` with the script that draws it for everything else. The plotly.js library
itself is published once per kernel, as its own output (marked with :data:`PLOTLYJS_METADATA`),
so an exported page opens without a network connection; the documentation site drops that
output and serves one copy of plotly.js from the site instead.

:func:`use_exportable_figures` (called by ``enable_rich_display``) makes the renderer the
default, unless ``PLOTLY_RENDERER`` names another one.
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer, PlotlyRenderer
from plotly.offline import get_plotlyjs

RENDERER = "workbench"
PLOTLYJS_METADATA = {"workbench": {"plotlyjs": True}}


_SCRIPT = re.compile(r"(<script[^>]*>)(.*?)(</script>)", re.S)
# Draw now if plotly.js is loaded, else once the page has loaded it (a site may load it last).
_WHEN_LOADED = (
    "(function draw() {{ if (!window.Plotly) {{ window.addEventListener('load', draw, {{once: true}}); return; }}"
    " {} }})();"
)


def figure_html(figure: Any, *, div_id: str | None = None) -> str:
    """A figure (or figure dict) as an HTML ``<div>`` and the script that draws it, without
    plotly.js itself (an earlier output or the page provides ``window.Plotly``, before or after
    this script) and without MathJax (no network request)."""
    markup = pio.to_html(
        figure,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        default_width="100%",
        div_id=div_id,
        validate=False,
        config={"responsive": True},
    )
    return _SCRIPT.sub(lambda m: m.group(1) + _WHEN_LOADED.format(m.group(2)) + m.group(3), markup, count=1)


def figure_bundle(figure: Any) -> dict[str, Any]:
    """A figure's display data as the ``workbench`` renderer gives it (plotly's mimetype and the
    HTML), without publishing plotly.js: for outputs a widget sets itself."""
    return ExportableRenderer().to_mimebundle(figure.to_dict() if hasattr(figure, "to_dict") else dict(figure))


class ExportableRenderer(MimetypeRenderer):
    """Plotly's mimetype (live JupyterLab) plus self-contained HTML (every export)."""

    def __init__(self) -> None:
        self.mimetype = PlotlyRenderer()

    def activate(self) -> None:
        """Publish plotly.js once, as an output of its own, before the first figure (only inside
        IPython: elsewhere there is no output to publish to)."""
        from IPython import get_ipython
        from IPython.display import publish_display_data

        if get_ipython() is None:
            return

        script = f'<script type="text/javascript">{get_plotlyjs()}</script>'
        publish_display_data({"text/html": script}, metadata=copy.deepcopy(PLOTLYJS_METADATA))

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        bundle = self.mimetype.to_mimebundle(copy.deepcopy(fig_dict))
        bundle["text/html"] = figure_html(fig_dict)
        return bundle


def register() -> None:
    """Make the ``workbench`` renderer known to plotly (idempotent)."""
    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = ExportableRenderer()


def use_exportable_figures() -> str:
    """Make ``workbench`` the default renderer unless ``PLOTLY_RENDERER`` chooses one; returns
    the default in force."""
    register()
    if not os.environ.get("PLOTLY_RENDERER"):
        pio.renderers.default = RENDERER
    return str(pio.renderers.default)
