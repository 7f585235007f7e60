"""The history checker on hand-written histories: a clean one passes; each anomaly is caught,
counted as what it is, and described well enough to find it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reliability.checker import DUPLICATE, LOST, SKIPPED, VIOLATION, CheckReport, Row, check
from reliability.history import Histories, add, load

S = "st"
IDS = {name: f"00000000-0000-4000-8000-{n:012d}" for n, name in enumerate("abcdefghijk", start=1)}


class _History:
    """Records as the clients write them, with a clock that ticks per record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.t = 100.0

    def _add(self, process: str, **record: Any) -> None:
        self.t += 1
        self.records.append({"process": process, "time": self.t, **record})

    def invoke(
        self, op: str, ids: str, *, expected: Any = "any", attempt: int = 1, process: str = "w0", stream: str = S
    ) -> None:
        self._add(process, type="invoke", op=op, attempt=attempt, kind="any", stream=stream, expected=expected,
                  ids=[IDS[i] for i in ids])  # fmt: skip

    def ok(self, op: str, first: int, last: int, position: int, *, attempt: int = 1, process: str = "w0") -> None:
        self._add(process, type="ok", op=op, attempt=attempt, first=first, last=last, position=position)

    def done(self, op: str, outcome: str, *, attempt: int = 1, process: str = "w0") -> None:
        self._add(process, type=outcome, op=op, attempt=attempt, error="ConcurrencyError: planted")

    def settle(self, position: int, seen: list[tuple[str, int, str, int]], process: str = "r0") -> None:
        self._add(process, type="calling")
        self._add(process, type="settled", position=position, started=self.t)
        self._add(process, type="seen", events=[[s, v, IDS[i], p] for s, v, i, p in seen])

    def projection(self, *, start: int = 0, process: str = "r0") -> None:
        self._add(process, type="start", position=start)

    def finish(self, process: str = "r0") -> None:
        self._add(process, type="done")

    def histories(self) -> Histories:
        out = Histories()
        for record in self.records:
            add(out, record)
        return out


def _row(version: int, name: str, position: int, partition: int = 0) -> Row:
    return Row(S, version, IDS[name], position, partition)


def _clean() -> tuple[_History, list[Row]]:
    """a+b acknowledged (v1-2); c refused; d unknown, retried, acknowledged (v3); e unknown and
    never resolved, not stored; f unknown and never resolved, stored (v4). A projection saw all."""
    h = _History()
    h.projection()
    h.invoke("op1", "ab")
    h.ok("op1", 1, 2, 20)
    h.invoke("op2", "c", expected=0)
    h.done("op2", "fail")
    h.invoke("op3", "d")
    h.done("op3", "info")
    h.invoke("op3", "d", attempt=2)
    h.ok("op3", 3, 3, 30, attempt=2)
    h.invoke("op4", "e")
    h.done("op4", "info")
    h.invoke("op5", "f")  # killed: no completion
    stored = [_row(1, "a", 10), _row(2, "b", 20), _row(3, "d", 30), _row(4, "f", 40)]
    h.settle(25, [(S, 1, "a", 10), (S, 2, "b", 20)])
    h.settle(40, [(S, 3, "d", 30), (S, 4, "f", 40)])
    h.finish()
    return h, stored


def _kinds(report: CheckReport) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(p.category)
    return out


def test_a_clean_history_passes_with_its_counts() -> None:
    h, stored = _clean()
    report = check(h.histories(), stored)
    assert report.passed, report.problems
    assert (report.operations, report.invocations) == (5, 6)
    assert (report.ok, report.fail, report.info, report.unanswered) == (2, 1, 2, 1)
    assert report.unknown == 3 and report.resolved == 1 and report.unresolved == 2
    assert report.events_acknowledged == 3 and report.events_stored == 4 and report.events_seen == 4


def test_an_acknowledged_event_missing_is_lost() -> None:
    h, stored = _clean()
    report = check(h.histories(), [r for r in stored if r.event_id != IDS["b"]])
    assert _kinds(report)[LOST] == ["an acknowledged event is missing"]
    assert IDS["b"] in next(p.detail for p in report.problems if p.kind == LOST)
    # the half-stored append is also reported as such
    assert "an append stored in part" in _kinds(report)[VIOLATION]


def test_an_unknown_outcome_resolved_by_a_retry_must_be_stored() -> None:
    h, stored = _clean()
    report = check(h.histories(), [r for r in stored if r.event_id != IDS["d"]])
    assert report.count(LOST) == 1 and "op3" in next(p.detail for p in report.problems if p.kind == LOST)


def test_an_event_id_stored_twice_is_a_duplicate() -> None:
    h, stored = _clean()
    twice = [*stored, _row(5, "a", 50, partition=0)]
    kinds = _kinds(check(h.histories(), twice))
    assert kinds[DUPLICATE] == ["an event id stored twice"]


def test_an_unknown_outcome_never_retried_may_be_stored_once_not_twice() -> None:
    h, stored = _clean()
    twice = [*stored, _row(5, "f", 50)]  # f (op5, unanswered) stored again
    report = check(h.histories(), twice)
    assert report.count(DUPLICATE) == 1 and "op5" in report.problems[0].detail


def test_a_version_held_by_two_events_is_a_violation() -> None:
    h, stored = _clean()
    # e written into a second partition at version 4: the read path returns only one of them
    raw = [*stored, _row(4, "e", 45, partition=1)]
    kinds = _kinds(check(h.histories(), raw, read_back=stored))
    assert "a version held by two events" in kinds[VIOLATION]
    assert "a stored event that reads do not return" in kinds[VIOLATION]


def test_a_refused_append_that_is_stored_is_a_violation() -> None:
    h, stored = _clean()
    report = check(h.histories(), [*stored, _row(5, "c", 50)])
    assert "a refused append is stored" in _kinds(report)[VIOLATION]


def test_an_event_no_client_sent_and_a_gap_are_violations() -> None:
    h, stored = _clean()
    invented = Row(S, 6, "00000000-0000-4000-8000-999999999999", 60)
    kinds = _kinds(check(h.histories(), [*stored, invented]))
    assert "an event no client sent" in kinds[VIOLATION]
    assert "a stream whose versions do not run 1..n" in kinds[VIOLATION]


def test_an_append_acknowledged_at_other_versions_and_positions_out_of_order() -> None:
    h, _ = _clean()
    moved = [_row(1, "d", 10), _row(2, "a", 5), _row(3, "b", 20), _row(4, "f", 40)]
    kinds = _kinds(check(h.histories(), moved))
    assert "an append acknowledged at other versions than stored" in kinds[VIOLATION]
    assert "positions that do not rise with versions" in kinds[VIOLATION]


def test_a_projection_that_never_saw_an_event_below_its_settled_position_skipped_it() -> None:
    """The feed's classic failure: a writer commits below a position a reader already called
    settled, after it did. The skip names the settled position that passed it and says the
    append was acknowledged after that."""
    h = _History()
    h.projection()
    h.invoke("op1", "a")
    h.ok("op1", 1, 1, 10)
    h.settle(30, [(S, 1, "a", 10)])
    h.invoke("op2", "b")
    h.ok("op2", 2, 2, 20)  # position 20 <= 30, committed after the settle
    h.settle(40, [])
    h.finish()
    report = check(h.histories(), [_row(1, "a", 10), _row(2, "b", 20)])
    assert report.count(SKIPPED) == 1 and len(report.problems) == 1
    detail = report.problems[0].detail
    assert "settled position 30" in detail and "s after that" in detail and "op2" in detail


def test_a_projection_seeing_an_event_twice_or_out_of_order() -> None:
    h = _History()
    h.projection()
    h.invoke("op1", "ab")
    h.ok("op1", 1, 2, 20)
    h.settle(30, [(S, 2, "b", 20), (S, 1, "a", 10), (S, 2, "b", 20)])
    h.finish()
    kinds = _kinds(check(h.histories(), [_row(1, "a", 10), _row(2, "b", 20)]))
    assert kinds[DUPLICATE] == ["a projection saw an event twice"]
    assert "a projection saw a stream out of version order" in kinds[VIOLATION]


def test_a_projection_events_must_be_as_stored_and_within_its_settled_position() -> None:
    h = _History()
    h.projection()
    h.invoke("op1", "a")
    h.ok("op1", 1, 1, 10)
    h.settle(5, [(S, 1, "a", 11)])
    h.settle(20, [])
    h.finish()
    kinds = _kinds(check(h.histories(), [_row(1, "a", 10)]))
    assert "a projection saw an event elsewhere than stored" in kinds[VIOLATION]
    assert "a projection read past its settled position" in kinds[VIOLATION]


@pytest.mark.parametrize("finished", [False, True])
def test_a_feed_that_stalls_is_a_violation(finished: bool) -> None:
    h = _History()
    h.projection()
    h.invoke("op1", "a")
    h.ok("op1", 1, 1, 10)
    h.settle(5, [])
    if finished:
        h.finish()  # finished, but settled below the acknowledged event
    else:
        h._add("r0", type="calling")  # a settle call that never returned
    report = check(h.histories(), [_row(1, "a", 10)])
    assert _kinds(report) == {VIOLATION: ["the feed stalled"]}
    assert ("below the newest acknowledged" if finished else "never finished") in report.problems[0].detail


def test_events_before_a_projections_start_are_not_expected_unless_appended_after_it() -> None:
    h = _History()
    h.invoke("op1", "a")
    h.ok("op1", 1, 1, 10)
    h.projection(start=15)  # starts after op1: it owes nothing at or below 15 appended before
    h.invoke("op2", "b")
    h.ok("op2", 2, 2, 20)
    h.settle(20, [(S, 2, "b", 20)])
    h.finish()
    assert check(h.histories(), [_row(1, "a", 10), _row(2, "b", 20)]).passed
    h.invoke("op3", "c", process="w1", stream="other")  # appended after the projection started, below its start
    h.ok("op3", 1, 1, 12, process="w1")
    report = check(h.histories(), [_row(1, "a", 10), _row(2, "b", 20), Row("other", 1, IDS["c"], 12)])
    assert _kinds(report) == {SKIPPED: ["a projection never saw an event below its settled position"]}
    assert "op3" in report.problems[0].detail


def test_history_files_load_with_a_torn_last_line_and_a_resumed_operation(tmp_path: Path) -> None:
    h, stored = _clean()
    first = [r for r in h.records if r["process"] == "w0"]
    (tmp_path / "w0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first) + '{"process": "w0", "ty')
    resumed = {"process": "w1", "time": 999.0, "type": "invoke", "op": "op5", "attempt": 2, "kind": "any",
               "stream": S, "expected": "any", "ids": [IDS["f"]]}  # fmt: skip
    answered = {"process": "w1", "time": 1000.0, "type": "ok", "op": "op5", "attempt": 2, "first": 4, "last": 4,
                "position": 40}  # fmt: skip
    (tmp_path / "a-resumer.jsonl").write_text(json.dumps(resumed) + "\n" + json.dumps(answered) + "\n")
    histories = load(tmp_path)
    assert histories.torn_lines == 1
    op5 = histories.operations["op5"]
    assert [a.number for a in op5.attempts] == [1, 2] and op5.outcome == "ok"
    report = check(histories, stored)
    assert report.passed and report.resolved == 2 and report.unanswered == 1
