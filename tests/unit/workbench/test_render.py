"""The HTML renderers and their registration with IPython."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from es_core import Aggregate, AppendResult, DomainEvent, EventStore, Snapshot, applies
from workbench import (
    EventsView,
    aggregate_html,
    domain_event_html,
    enable_rich_display,
    event_html,
    to_html,
    view_log,
    view_stream,
)


class Subscribed(DomainEvent, frozen=True, kw_only=True):
    event_type = "Subscribed"
    plan: str


class State(msgspec.Struct):
    plan: str | None = None
    devices: dict[str, int] = {}


class Member(Aggregate[State]):
    aggregate_type = "member"
    State = State

    @applies(Subscribed)
    def _subscribed(self, event: Subscribed) -> None:
        self.state.plan = event.plan


def test_a_recorded_event_shows_where_it_is_and_its_data(store: EventStore) -> None:
    record = store.read_stream("member-ana")[0]
    markup = event_html(record)
    for text in ("member-ana", "MemberSubscribed", "v1", "standard", "position 1"):
        assert text in markup


def test_values_are_escaped(store: EventStore) -> None:
    record = store.read_stream("member-ana")[0]
    hostile = msgspec.structs.replace(record, data={"plan": "<script>alert(1)</script>"})
    assert "<script>" not in event_html(hostile)
    assert "&lt;script&gt;" in event_html(hostile)


def test_streams_and_logs_render_as_tables(store: EventStore) -> None:
    view = view_stream(store, "member-ana")
    assert len(view) == 3 and view[0].version == 1
    markup = view._repr_html_()
    assert markup.count("<tr>") == 4 and "version 3" in markup
    log = view_log(store, limit=2)
    assert "2 events" in log._repr_html_()
    assert "1 more events" in EventsView(store.read_stream("member-ana"), max_rows=2)._repr_html_()


def test_aggregates_domain_events_and_snapshots_render() -> None:
    member = Member("ana")
    member.record(Subscribed(plan="premium"))
    markup = aggregate_html(member)
    assert "Member" in markup and "premium" in markup and "1 pending" in markup
    assert "Subscribed" in domain_event_html(Subscribed(plan="basic"))
    snapshot = Snapshot(
        stream_id="member-ana",
        version=3,
        state_type="member",
        state_schema_version=1,
        state=msgspec.json.encode(member.state),
        taken_at=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert "at v3" in to_html(snapshot) and "premium" in to_html(snapshot)
    result = AppendResult(stream_id="s", first_version=1, last_version=2, duplicate=True)
    assert "retry" in to_html(result)
    assert to_html(object()).startswith("<pre>")


class _Formatter:
    def __init__(self) -> None:
        self.types: dict[type, Any] = {}

    def for_type(self, cls: type, fn: Any) -> None:
        self.types[cls] = fn


class _Shell:
    def __init__(self) -> None:
        self.display_formatter = type("DF", (), {"formatters": {"text/html": _Formatter()}})()


def test_enable_rich_display_registers_every_renderer() -> None:
    shell = _Shell()
    assert enable_rich_display(shell)
    registered = shell.display_formatter.formatters["text/html"].types
    assert {Aggregate, DomainEvent, Snapshot, AppendResult} <= set(registered)
    assert enable_rich_display() is False  # no IPython kernel here
