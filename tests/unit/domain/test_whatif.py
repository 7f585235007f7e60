"""What-if on a small hand-built history, with the differences worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from downloads import AcquireLicense, ReleaseLicense, recorded_requests, whatif

from .conftest import T0, World, make_rules

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def history() -> World:
    """ann downloads film-a four times (the 4th is denied: 3 a year); bob downloads on three
    devices (the 3rd is denied: standard allows 2); cat downloads film-b three times and
    deletes the third; ann's client retries one request."""
    world = World()
    world.join("ann")
    world.join("bob", devices=("phone", "tablet", "laptop"))
    world.join("cat")
    fourth = [world.acquire("film-a", T0 + n * DAY, member="ann") for n in range(4)][-1]
    assert fourth.request_id == "r12"
    retry = world.send(AcquireLicense, "ann", T0 + 3 * DAY, request_id="r12", device_id="phone", title_id="film-a")
    assert retry.duplicate
    for device, title in (("phone", "show-x"), ("tablet", "show-y"), ("laptop", "show-x")):
        world.acquire(title, T0 + DAY, member="bob", device=device)
    third = None
    for n in range(3):
        third = world.acquire("film-b", T0 + n * DAY, member="cat").license_id
    world.send(ReleaseLicense, "cat", T0 + 5 * DAY, license_id=third)
    return world


def test_the_request_history_is_read_back_once_per_request(history: World) -> None:
    requests = list(recorded_requests(history.store))
    assert len(requests) == (2 + 4 + 2) + 4 + 3 + (3 + 1)  # joins with devices; ann; bob; cat and her delete
    assert len({(r.command.member_id, r.command.request_id) for r in requests}) == len(requests)
    statuses = [(r.command.member_id, r.status, r.rule) for r in requests if r.command.name == "AcquireLicense"]
    assert statuses.count(("ann", "denied", "title_downloads_per_year")) == 1
    assert statuses.count(("bob", "denied", "devices_per_plan")) == 1


def test_a_generous_title_limit_grants_the_fourth_download(history: World) -> None:
    report = whatif(history.store, make_rules(name="generous", title_limit=5), catalogue=history.catalogue)
    assert (report.newly_granted, report.newly_denied, report.rule_changed) == (1, 0, 0)
    assert report.by_member == {"ann": {"newly_granted": 1}}
    assert report.denials_by_rule == {
        "devices_per_plan": {"before": 1, "after": 1},
        "title_downloads_per_year": {"before": 1, "after": 0},
    }
    [change] = report.changes
    assert (change.member_id, change.request_id, change.before, change.after) == ("ann", "r12", "denied", "granted")
    assert change.rule_before == "title_downloads_per_year" and change.rule_after is None
    assert report.not_applicable == {}
    assert (report.granted_before, report.granted_after) == (8, 9)


def test_three_devices_on_standard_grants_bobs_third_device(history: World) -> None:
    report = whatif(history.store, make_rules(name="three", standard_devices=3), catalogue=history.catalogue)
    assert (report.newly_granted, report.newly_denied) == (1, 0)
    assert report.by_member == {"bob": {"newly_granted": 1}}
    assert report.changes[0].rule_before == "devices_per_plan"


def test_a_stricter_limit_denies_more_and_later_requests_no_longer_apply(history: World) -> None:
    report = whatif(history.store, make_rules(name="strict", title_limit=2), catalogue=history.catalogue)
    assert (report.newly_granted, report.newly_denied) == (0, 2)
    assert report.by_member == {"ann": {"newly_denied": 1}, "cat": {"newly_denied": 1}}
    assert report.denials_by_rule["title_downloads_per_year"] == {"before": 1, "after": 3}
    assert report.not_applicable == {"ReleaseLicense": 1}  # cat deletes a download she never got


def test_the_same_rules_change_nothing(history: World) -> None:
    report = whatif(history.store, make_rules(), catalogue=history.catalogue)
    assert (report.newly_granted, report.newly_denied, report.rule_changed, report.changes) == (0, 0, 0, [])
    assert report.requests == len(list(recorded_requests(history.store)))


def test_whatif_writes_only_to_its_scratch_store(history: World) -> None:
    head = history.store.head_position()
    from es_core import open_store

    scratch = open_store("memory://")
    whatif(history.store, make_rules(title_limit=5), catalogue=history.catalogue, scratch=scratch)
    assert history.store.head_position() == head
    assert scratch.head_position() > 0
    replayed = {r.recorded_at for r in scratch.read_all()}
    assert min(replayed) == T0  # recorded at the original times, not now


def test_the_report_says_what_the_history_was_recorded_and_replayed_under(history: World) -> None:
    generous = make_rules(name="generous", title_limit=5)
    report = whatif(history.store, generous, catalogue=history.catalogue)
    assert report.rules_label == generous.label != history.rules.label
    assert report.recorded_under == {history.rules.label: report.download_requests}
    assert all(r.rules == history.rules.label for r in recorded_requests(history.store) if r.command.name ==
               "AcquireLicense")
