"""VersionContinuity: a hole or a repeat in any stream's versions is reported, never stepped over."""

from __future__ import annotations

import pytest

from es_core import (
    Decoded,
    EventRegistry,
    InvalidInputError,
    MemoryStore,
    NewEvent,
    ProjectionRunner,
    RecordedEvent,
    StreamGap,
    StreamGapError,
    VersionContinuity,
)

from .lossy_store import LossyStore


def _event(n: int = 0) -> NewEvent:
    return NewEvent(event_type="Thing", data={"n": n})


@pytest.fixture
def store() -> MemoryStore:
    """Streams a, b, c interleaved: a1 b1 a2 c1 a3 b2 c2 a4 (positions 1..8)."""
    store = MemoryStore()
    for stream in "abacabca":
        store.append(stream, [_event()])
    return store


def _log(store: MemoryStore) -> list[RecordedEvent]:
    return list(store.read_all())


def test_a_whole_log_passes_with_no_reads_from_zero(store: MemoryStore) -> None:
    checker = VersionContinuity(store, after=0)
    assert [checker.check(r) for r in _log(store)] == [None] * 8
    assert checker.first_sight_reads == 0  # every stream first seen at version 1


def test_a_skipped_event_raises_with_the_gap(store: MemoryStore) -> None:
    log = _log(store)
    checker = VersionContinuity(store, after=0)
    feed = [r for r in log if r.position != 5]  # a3 at position 5 never delivered
    with pytest.raises(StreamGapError) as caught:
        for record in feed:
            checker.check(record)
    assert caught.value.gap == StreamGap("a", 3, 4, 8)
    assert caught.value.gap.skipped
    assert "expected version 3, found 4" in str(caught.value)


def test_a_repeated_event_is_reported(store: MemoryStore) -> None:
    log = _log(store)
    gaps: list[StreamGap] = []
    checker = VersionContinuity(store, after=0, on_gap=gaps.append)
    for record in [*log[:3], log[2], *log[3:]]:  # a2 delivered twice
        checker.check(record)
    assert gaps == [StreamGap("a", 3, 2, 3)]
    assert not gaps[0].skipped


def test_with_a_callback_the_gap_is_returned_and_checking_goes_on(store: MemoryStore) -> None:
    log = _log(store)
    gaps: list[StreamGap] = []
    checker = VersionContinuity(store, after=0, on_gap=gaps.append)
    results = [checker.check(r) for r in log if r.position not in (2, 5)]  # b1 and a3 lost
    assert gaps == [StreamGap("b", 1, 2, 6), StreamGap("a", 3, 4, 8)]
    assert [g for g in results if g is not None] == gaps


def test_first_sight_in_mid_log_checks_the_previous_version_against_the_checkpoint(store: MemoryStore) -> None:
    log = _log(store)
    # resuming after position 4: a2 (pos 3), b1 (pos 2), c1 (pos 4) were delivered before
    checker = VersionContinuity(store, after=4)
    assert [checker.check(r) for r in log[4:]] == [None] * 4
    assert checker.first_sight_reads == 3  # a, b, c: one read each, then remembered

    # resuming after position 4, but the feed lost a3 (position 5): a4's predecessor is past the checkpoint
    checker = VersionContinuity(store, after=4)
    with pytest.raises(StreamGapError) as caught:
        for record in log[5:]:
            checker.check(record)
    assert caught.value.gap == StreamGap("a", 3, 4, 8)


def test_a_predecessor_removed_by_retention_is_not_a_hole() -> None:
    store = MemoryStore()
    store.append("s", [_event(i) for i in range(5)])
    assert store.truncate_stream("s", 4) == 3
    checker = VersionContinuity(store, after=0)
    assert [checker.check(r) for r in store.read_all()] == [None, None]


def test_memory_is_bounded_and_forgetting_never_raises_a_false_alarm() -> None:
    store = MemoryStore()
    for round_ in range(3):
        for stream in ("a", "b", "c", "d"):
            store.append(stream, [_event(round_)])
    checker = VersionContinuity(store, after=0, max_streams=2)
    assert [checker.check(r) for r in store.read_all()] == [None] * 12
    assert len(checker._versions) == 2


def test_bad_arguments_are_refused(store: MemoryStore) -> None:
    with pytest.raises(InvalidInputError):
        VersionContinuity(store, after=-1)
    with pytest.raises(InvalidInputError):
        VersionContinuity(store, after=0, max_streams=0)
    with pytest.raises(InvalidInputError):
        VersionContinuity(store, after=0, on_gap="alarm")  # type: ignore[arg-type]


class _Count:
    name = "count"

    def __init__(self) -> None:
        self.seen = 0

    def handle(self, item: Decoded) -> None:
        self.seen += 1

    def reset(self) -> None:
        self.seen = 0


def test_the_projection_runner_reports_a_hole_in_the_feed() -> None:
    store, registry = LossyStore(), EventRegistry(tolerant=True)
    for stream in "abacabca":
        store.append(stream, [_event()])
    with pytest.raises(StreamGapError):
        ProjectionRunner(store, registry, _Count()).run()
    gaps: list[StreamGap] = []
    assert ProjectionRunner(store, registry, _Count(), on_gap=gaps.append).run() == 7
    assert gaps == [StreamGap("a", 3, 4, 8)]
