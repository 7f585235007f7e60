"""State in the past, in both times, on every store: *as it happened* by a business time
(``happened_by``) and *as it was known* at a recording time (``known_by``). A request that
arrives late makes the two differ."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from downloads import AcquireLicense, DownloadService, PlayDownload, RegisterDevice, Subscribe
from es_core import EventStore, HistoryTruncatedError, InvalidInputError
from tests.contract.conftest import STORE_FACTORIES

from .conftest import T0, make_catalogue, make_rules

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture(params=sorted(STORE_FACTORIES), ids=str)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "cassandra":
        request.applymarker(pytest.mark.cassandra)
    opened = STORE_FACTORIES[request.param](tmp_path)()
    yield opened
    opened.close()


class Story:
    """One member on a store whose clock (the service's) the story moves."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.member = f"tt-{uuid.uuid4().hex[:8]}"  # unique on a shared Cassandra keyspace
        self.now = T0
        store.clock = lambda: self.now
        self.service = DownloadService(store, make_rules(), make_catalogue())
        self.n = 0

    def send(self, make: type, at: object, now: object, **fields: object):  # type: ignore[no-untyped-def]
        self.now = now  # type: ignore[assignment]
        self.n += 1
        return self.service.handle(make(member_id=self.member, at=at, request_id=f"q{self.n}", **fields))


def test_a_late_request_makes_the_two_times_differ(store: EventStore) -> None:
    s = Story(store)
    s.send(Subscribe, T0, T0, plan="premium")
    s.send(RegisterDevice, T0, T0, device_id="phone")
    s.send(RegisterDevice, T0 + 6 * MINUTE, T0 + 2 * MINUTE, device_id="tablet")  # a clock 4 minutes fast
    # the phone's download happened at 12:03 but reached the service at 12:08 (a slow network)
    late = s.send(AcquireLicense, T0 + 3 * MINUTE, T0 + 8 * MINUTE, device_id="phone", title_id="show-x")
    assert late.granted
    between = T0 + 5 * MINUTE
    happened = s.service.member(s.member, happened_by=between)
    known = s.service.member(s.member, known_by=between)
    assert late.license_id in happened.state.licenses  # it had happened by 12:05 ...
    assert known.state.licenses == {}  # ... but the service did not know it until 12:08
    assert "tablet" in known.state.devices and "tablet" not in happened.state.devices  # and the other way round
    both = s.service.member(s.member, happened_by=between, known_by=T0 + 7 * MINUTE)
    assert both.state.licenses == {} and "tablet" not in both.state.devices  # as it happened, as known then
    now = s.service.member(s.member)
    assert s.service.member(s.member, happened_by=T0 + HOUR).state == now.state
    assert s.service.member(s.member, known_by=T0 + HOUR).state == now.state


def test_as_it_happened_puts_a_late_play_back_where_it_happened(store: EventStore) -> None:
    s = Story(store)
    s.send(Subscribe, T0, T0, plan="standard")
    s.send(RegisterDevice, T0, T0, device_id="phone")
    got = s.send(AcquireLicense, T0 + MINUTE, T0 + MINUTE, device_id="phone", title_id="film-a")
    s.send(PlayDownload, T0 + 10 * MINUTE, T0 + 13 * MINUTE, license_id=got.license_id)  # reported 3 minutes late
    played = T0 + 11 * MINUTE
    assert s.service.member(s.member, happened_by=played).state.licenses[got.license_id].first_played_at is not None
    assert s.service.member(s.member, known_by=played).state.licenses[got.license_id].first_played_at is None


def test_the_two_times_refuse_bad_input_and_need_every_event(store: EventStore) -> None:
    s = Story(store)
    s.send(Subscribe, T0, T0, plan="standard")
    with pytest.raises(InvalidInputError, match="happened_by must be a timezone-aware datetime"):
        s.service.member(s.member, happened_by=T0.replace(tzinfo=None))
    with pytest.raises(InvalidInputError):
        s.service.member(s.member, happened_by=T0, at_version=1)
    s.send(RegisterDevice, T0, T0, device_id="phone")
    store.truncate_stream(f"member-{s.member}", 2)
    with pytest.raises(HistoryTruncatedError, match="as it happened needs every event"):
        s.service.member(s.member, happened_by=T0)
