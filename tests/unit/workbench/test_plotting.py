"""Figures carry HTML that every export keeps, and tables read without NaN."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from workbench import figure_html, table_html, use_exportable_figures
from workbench.plotting import RENDERER


@pytest.fixture
def default_renderer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = pio.renderers.default
    monkeypatch.delenv("PLOTLY_RENDERER", raising=False)
    yield
    pio.renderers.default = saved


def test_a_figure_answers_with_the_plotly_mimetype_and_self_drawing_html(default_renderer: None) -> None:
    assert use_exportable_figures() == RENDERER
    figure = go.Figure(go.Bar(x=["a", "b"], y=[3, 5]))
    bundle = figure._repr_mimebundle_()
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["y"] == [3, 5]
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert "<script src=" not in html, "no script is fetched from a network"
    assert "mathjax" not in html.lower()


def test_a_renderer_chosen_by_the_environment_is_kept(
    default_renderer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pio.renderers.default = "json"
    monkeypatch.setenv("PLOTLY_RENDERER", "json")
    assert use_exportable_figures() == "json"


def test_figure_html_needs_plotly_from_the_page() -> None:
    html = figure_html(go.Figure(go.Scatter(x=[1, 2], y=[2, 1])), div_id="chart-1")
    assert 'id="chart-1"' in html and "plotly.js v" not in html
    assert "window.addEventListener('load', draw" in html, "a page that loads plotly.js last still draws it"


def test_table_html_shows_missing_values_as_a_dash_and_times_without_seconds() -> None:
    frame = pd.DataFrame(
        {
            "rule": ["a", "b"],
            "free_again_at": [pd.NaT, pd.Timestamp(datetime(2026, 3, 1, 9, 30, 12, tzinfo=UTC))],
            "limit": [2.0, float("nan")],
            "at_limit": [True, False],
        }
    )
    html = table_html(frame)
    assert "NaN" not in html and "NaT" not in html and "None" not in html
    assert html.count("—") == 2 and "2026-03-01 09:30<" in html
    assert ">yes<" in html and ">no<" in html
    assert "<i>nothing here</i>" in table_html(frame.iloc[0:0], empty="nothing here")
