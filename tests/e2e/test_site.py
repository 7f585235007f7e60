"""The documentation site as a reader meets it: built by ``make docs``'s code from the notebooks'
executed copies, opened from disk in headless Chromium with every network request refused,
followed page by page through its "next" links, with a plotly chart drawn on every page that
has one. Screenshots land in artifacts/screenshots/site/."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from workbench.site import SITE_DIR, build_site

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def site(chromium_browser: object) -> Path:
    report = build_site(say=lambda _: None)
    assert not report.problems, "\n".join(report.problems)
    return report.site


def test_every_page_is_reached_by_next_links_and_every_chart_draws_offline(
    site: Path, offline_page: Page, screenshot_dir: Path
) -> None:
    from playwright.sync_api import expect

    page = offline_page
    shots = screenshot_dir / "site"
    shots.mkdir(parents=True, exist_ok=True)
    page.goto((site / "index.html").as_uri())
    in_contents = {
        (site / href).resolve()
        for href in page.locator(".sidebar-tree a.reference.internal").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        )
    }
    visited: list[Path] = []
    charts = 0
    while True:
        here = Path(page.url.removeprefix("file://").split("#")[0]).resolve()
        assert here not in visited, f"the next links loop back to {here}"
        visited.append(here)
        expect(page.locator("article h1").first).to_be_visible()
        name = here.relative_to(site.resolve()).as_posix().replace("/", "_").removesuffix(".html")
        if page.locator(".plotly-graph-div").count():
            first = page.locator(".plotly-graph-div").first
            first.scroll_into_view_if_needed()
            expect(first.locator("svg.main-svg").first).to_be_visible()
            assert first.locator("g.trace").count() > 0, f"{name}: the chart drew no data"
            charts += 1
        page.screenshot(path=str(shots / f"{name}.png"))
        following = page.locator("a.next-page")
        if not following.count():
            break
        following.first.click()
        page.wait_for_load_state("load")
    assert in_contents <= set(visited), f"pages in the contents never reached: {in_contents - set(visited)}"
    assert charts >= 7, f"only {charts} pages drew a chart"
    assert not page.refused, f"the site asked the network for {page.refused}"  # type: ignore[attr-defined]
    errors = [e for e in getattr(page, "console_errors", []) if "net::ERR" not in e]
    assert not errors, errors


def test_the_api_reference_documents_both_packages(site: Path, offline_page: Page) -> None:
    page = offline_page
    page.goto((site / "api" / "es_core.html").as_uri())
    assert page.locator("dt.sig", has_text="EventRegistry").count() > 0
    page.goto((site / "api" / "downloads.html").as_uri())
    assert page.locator("dt.sig", has_text="DownloadService").count() > 0


def test_the_time_travel_page_shows_the_control_as_it_was_left(site: Path, offline_page: Page) -> None:
    page = offline_page
    page.goto((site / "notebooks" / "04_rebuild_state_and_travel_in_time.html").as_uri())
    body = page.locator("article").inner_text()
    assert "Licences held" in body and "Limits in play" in body and "NaN" not in body
    assert SITE_DIR.exists()
