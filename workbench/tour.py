"""The headless tour: the first notebook's steps (append, read, replay) run as a script, then
every notebook executed in small mode and exported to HTML for a browser.

``python -m workbench tour`` (``make tour``, see ``workbench.cli``) runs both; ``--no-export``
runs the steps only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from es_core import ConcurrencyError, EventStore, Expect, NewEvent, RecordedEvent, event_id_from

from .execute import execute_all
from .settings import PROJECT_ROOT, ManualClock, notebook_store

HTML_DIR = PROJECT_ROOT / "artifacts" / "html"
Say = Callable[[str], None]

# -- the tour's steps --------------------------------------------------------------------------

STORY: list[tuple[int, str, dict[str, Any]]] = [
    (0, "MemberSubscribed", {"plan": "standard"}),
    (1, "DeviceRegistered", {"device_id": "ana-phone", "kind": "phone"}),
    (30, "LicenseAcquired", {"license_id": "lic-1", "device_id": "ana-phone", "title_id": "quiet-frontier"}),
    (120, "LicensePlayed", {"license_id": "lic-1"}),
    (60 * 24 * 3, "LicenseRenewed", {"license_id": "lic-1"}),
    (60 * 24 * 4, "LicenseReleased", {"license_id": "lic-1", "reason": "deleted"}),
]
EMPTY: dict[str, Any] = {"plan": None, "devices": frozenset(), "licences": {}, "downloads": 0}


def evolve(state: dict[str, Any], event: RecordedEvent) -> dict[str, Any]:
    """The tour's fold: the member's state after one more event."""
    data = event.data
    state = {**state, "licences": dict(state["licences"])}
    if event.event_type == "MemberSubscribed":
        state["plan"] = data["plan"]
    elif event.event_type == "DeviceRegistered":
        state["devices"] = state["devices"] | {data["device_id"]}
    elif event.event_type == "DeviceRemoved":
        state["devices"] = state["devices"] - {data["device_id"]}
    elif event.event_type == "LicenseAcquired":
        state["licences"][data["license_id"]] = data["title_id"]
        state["downloads"] += 1
    elif event.event_type == "LicenseRenewed":
        state["downloads"] += 1
    elif event.event_type == "LicenseReleased":
        state["licences"].pop(data["license_id"], None)
    return state


@dataclass
class TourResult:
    store_url: str
    stream_id: str
    events: int
    state: dict[str, Any]
    state_at_version_4: dict[str, Any]
    conflict: str
    retry_was_duplicate: bool
    lines: list[str] = field(default_factory=list)


def run_tour(store: EventStore | None = None, *, say: Say = print) -> TourResult:
    """Append Ana's story, read it back, replay it now and at version 4, show a conflict and a
    retry. Uses a fresh per-run store (SQLite by default, or ``ES_STORE_URL``)."""
    lines: list[str] = []

    def tell(text: str) -> None:
        lines.append(text)
        say(text)

    clock = ManualClock(datetime(2024, 3, 1, 9, 0, tzinfo=UTC))
    own = store is None
    store = store if store is not None else notebook_store("tour", clock=clock)
    if not own:
        store.clock = clock
    stream = "member-ana"
    try:
        tell(f"store: {store.url or type(store).__name__}")
        version = 0
        for minutes, event_type, data in STORY:
            clock.advance(minutes=minutes)
            event = NewEvent(event_type=event_type, data={**data, "at": clock().isoformat()})
            expected = Expect.NO_STREAM if version == 0 else version
            version = store.append(stream, [event], expected).last_version
            tell(f"append  {stream} v{version}: {event_type} {data}")
        events = store.read_stream(stream)
        tell(f"read    {stream}: {len(events)} events, versions {events[0].version}..{events[-1].version}")
        state = reduce(evolve, events, EMPTY)
        at_4 = reduce(evolve, store.read_stream(stream, upto=4), EMPTY)
        tell(
            f"replay  now: plan={state['plan']} devices={sorted(state['devices'])} "
            f"licences={state['licences']} downloads={state['downloads']}"
        )
        tell(f"replay  at version 4: licences={at_4['licences']} downloads={at_4['downloads']}")
        clock.advance(days=1)
        decided_at = store.stream_version(stream)
        laptop = NewEvent(event_type="DeviceRegistered", data={"device_id": "ana-laptop", "at": clock().isoformat()})
        store.append(stream, [laptop], decided_at)
        try:
            tv = NewEvent(event_type="DeviceRegistered", data={"device_id": "ana-tv", "at": clock().isoformat()})
            store.append(stream, [tv], decided_at)
            conflict = "none (unexpected)"
        except ConcurrencyError as exc:
            conflict = str(exc)
        tell(f"conflict: a second writer deciding at v{decided_at} was refused: {conflict}")
        removal = NewEvent(
            event_type="DeviceRemoved",
            data={"device_id": "ana-laptop", "at": clock().isoformat()},
            event_id=event_id_from("req-ana-remove-laptop-1", 0),
        )
        at = store.stream_version(stream)
        store.append(stream, [removal], at)
        retry = store.append(stream, [removal], at)
        tell(f"retry:   the same request sent twice was stored once (duplicate={retry.duplicate})")
        return TourResult(
            store_url=store.url,
            stream_id=stream,
            events=store.stream_version(stream),
            state=state,
            state_at_version_4=at_4,
            conflict=conflict,
            retry_was_duplicate=retry.duplicate,
            lines=lines,
        )
    finally:
        if own:
            store.close()


# -- exporting the notebooks -------------------------------------------------------------------


def export_html(
    notebooks: Sequence[Path] | None = None,
    *,
    out_dir: Path = HTML_DIR,
    small: bool = True,
    say: Say = print,
) -> list[Path]:
    """Execute each notebook (in small mode unless ``small=False``; an unchanged earlier run is
    reused, see ``workbench.execute``) and write it as HTML.

    Figures carry their HTML and the page carries plotly.js (``workbench.plotting``), so the
    HTML opens offline in any browser."""
    from nbconvert import HTMLExporter

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    exporter = HTMLExporter(template_name="lab")
    for result in execute_all(notebooks, small=small, say=say):
        if not result.ok:
            raise RuntimeError(f"{result.notebook.name} failed:\n{result.error}")
        body, _ = exporter.from_filename(str(result.output))
        target = out_dir / f"{result.notebook.stem}.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
        say(f"exported {target}")
    return written


__all__ = ["TourResult", "evolve", "export_html", "run_tour"]
