"""Retention policies as data, per stream category, on every backend: what a run keeps, what it
archives and deletes, its report, and the refusals that delete nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from es_core import (
    EventStore,
    InvalidInputError,
    JsonlArchive,
    RetentionPolicy,
    apply_retention,
    load_policies,
)

from .test_repository import Wallet, fill, repo

Sid = Callable[..., str]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_keep_last_archives_then_deletes_what_the_snapshot_covers(store: EventStore, sid: Sid, tmp_path: Path) -> None:
    r = repo(store, every=5)
    wid, bare = sid(), sid("bare")
    fill(r, wid, list(range(1, 13)))  # snapshots at v5 and v10
    fill(r, bare, [1, 2])  # no snapshot: left whole
    archive = JsonlArchive(tmp_path / "archive.jsonl")
    stream, bare_stream = Wallet.stream_id_for(wid), Wallet.stream_id_for(bare)
    report = apply_retention([r], [RetentionPolicy(category="wallet", keep_last=5)], archive=archive,
                             streams=[stream, bare_stream, "other-1"])
    assert (report.streams_examined, report.streams_without_snapshot, report.archived, report.deleted) == (2, 1, 7, 7)
    assert [(s.stream_id, s.kept_from) for s in report.streams] == [(stream, 8)]  # 12 - 5 + 1
    assert [e.version for e in archive.read()] == list(range(1, 8))
    assert [e.version for e in store.read_stream(stream)] == list(range(8, 13))
    assert r.load(wid).state.history == list(range(1, 13))  # from the snapshot at v10
    assert len(store.read_stream(bare_stream)) == 2
    again = apply_retention([r], [RetentionPolicy(category="wallet", keep_last=5)], archive=archive, streams=[stream])
    assert (again.archived, again.deleted) == (0, 0)  # idempotent


def test_keep_younger_than_keeps_recent_events_and_deletes_without_archive(store: EventStore, sid: Sid) -> None:
    now = [T0]
    store.clock = lambda: now[-1]
    r = repo(store, every=4)
    wid = sid()
    for day in range(8):  # one event a day, snapshots at v4 and v8
        now.append(T0 + timedelta(days=day))
        fill(r, wid, [day + 1])
    stream = Wallet.stream_id_for(wid)
    policy = RetentionPolicy(category="wallet", keep_younger_than=timedelta(days=5.5).total_seconds(), archive=False)
    report = apply_retention([r], [policy], streams=[stream], now=T0 + timedelta(days=8))
    # events of days 0..2 are older than 5.5 days; days 3.. are kept (the snapshot at v8 allows more)
    assert (report.archived, report.deleted) == (0, 3)
    assert [e.version for e in store.read_stream(stream)] == [4, 5, 6, 7, 8]
    assert r.load(wid).state.history == list(range(1, 9))


def test_a_policy_that_archives_needs_an_archive_and_deletes_nothing_without_one(store: EventStore, sid: Sid) -> None:
    r = repo(store, every=2)
    wid = sid()
    fill(r, wid, [1, 2, 3, 4])
    with pytest.raises(InvalidInputError, match="archive"):
        apply_retention([r], [RetentionPolicy(category="wallet")], streams=[Wallet.stream_id_for(wid)])
    with pytest.raises(InvalidInputError, match="no repository"):
        apply_retention([r], [RetentionPolicy(category="member", archive=False)], streams=[])
    assert len(store.read_stream(Wallet.stream_id_for(wid))) == 4


def test_policies_load_from_toml_and_bad_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text('[member]\nkeep_last = 200\nkeep_younger_than = 7776000\n\n[audit]\narchive = false\n')
    assert load_policies(path) == [
        RetentionPolicy(category="member", keep_last=200, keep_younger_than=7776000.0),
        RetentionPolicy(category="audit", archive=False),
    ]
    for bad in ({"member": {"keep_lats": 5}}, {"member": {"keep_last": -1}}, {"a-b": {}}, {"m": {"archive": "yes"}}):
        with pytest.raises(InvalidInputError):
            load_policies(bad)
    with pytest.raises(InvalidInputError):
        load_policies(tmp_path / "missing.toml")
