"""The history checker: the client histories (``reliability.history``) against a final read of
the store, after every fault healed.

What it verifies, and how each breach is counted (``Problem.kind``):

* every acknowledged (``ok``) event is in its stream, at the versions it was acknowledged with
  (``lost`` per missing event; a ``violation`` if elsewhere);
* an operation whose outcome was unknown and that a retry resolved is there exactly once when
  the retry was answered ``ok``, and not at all when it was refused; one never resolved is
  there at most once (the event-id checks below);
* no event id is stored twice, in any stream or partition (``duplicate``); no version is held
  by two events (``violation``); every stored event was sent by some client, an append is
  stored whole as one run of versions, a stream's versions run 1..n and its positions rise
  with its versions (``violation``); a refused append is not stored (``violation``);
* every projection saw every stored event up to its last settled position that came after its
  start: a position above its start position, or an append invoked after it started
  (``skipped`` per event it missed), each once (``duplicate``), as stored, and each
  stream in version order (``violation``); an event it missed is reported with the settled
  position that passed it and when its append was acknowledged: later means the settled
  position passed an event that appeared below it afterwards;
* each projection's last catch-up, after the writers stopped, finished and settled past every
  acknowledged event (else a ``violation``: the feed stalled).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise

from .history import FAIL, INFO, OK, Histories, Operation, ProjectionLog

LOST, DUPLICATE, SKIPPED, VIOLATION = "lost", "duplicate", "skipped", "violation"


@dataclass(frozen=True)
class Row:
    """One stored event as the final read found it (``partition``: where it physically sits)."""

    stream: str
    version: int
    event_id: str
    position: int
    partition: int = 0


@dataclass(frozen=True)
class Problem:
    kind: str  # lost | duplicate | skipped | violation
    category: str  # what broke, shared by every problem of that sort
    detail: str  # this instance, with enough to find it in the histories and the store


@dataclass
class CheckReport:
    operations: int = 0  # distinct appends
    invocations: int = 0  # attempts, retries included
    ok: int = 0  # completions by outcome
    fail: int = 0
    info: int = 0
    unanswered: int = 0  # invocations with no completion (the client was killed)
    resolved: int = 0  # operations with an unknown attempt that a retry resolved
    unresolved: int = 0  # operations whose outcome stayed unknown
    events_acknowledged: int = 0
    events_stored: int = 0
    events_seen: int = 0  # by all projections together
    problems: list[Problem] = field(default_factory=list)

    @property
    def unknown(self) -> int:
        return self.info + self.unanswered

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)

    @property
    def passed(self) -> bool:
        return not self.problems

    def add(self, kind: str, category: str, detail: str) -> None:
        self.problems.append(Problem(kind, category, detail))


def check(histories: Histories, stored: list[Row], read_back: list[Row] | None = None) -> CheckReport:
    """``stored``: every physical row of the run's streams; ``read_back``: the same streams as
    ``read_stream`` returns them (defaults to ``stored``)."""
    report = CheckReport()
    view = stored if read_back is None else read_back
    _physical(report, histories, stored, view)
    by_id = {row.event_id: row for row in view}
    _streams(report, view)
    for op in histories.operations.values():
        _operation(report, op, by_id)
    newest_ack = max(
        (a.position for op in histories.operations.values() if (a := op.acknowledged) and a.position is not None),
        default=0,
    )
    for log in histories.projections.values():
        _projection(report, log, view, histories, newest_ack)
    report.events_stored = len(by_id)
    return report


def _physical(report: CheckReport, histories: Histories, stored: list[Row], view: list[Row]) -> None:
    sent = {eid: op.op for op in histories.operations.values() for eid in op.event_ids}
    places: defaultdict[str, list[Row]] = defaultdict(list)
    holders: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
    for row in stored:
        places[row.event_id].append(row)
        holders[(row.stream, row.version)].add(row.event_id)
        if row.event_id not in sent:
            report.add(VIOLATION, "an event no client sent", f"{row.stream} v{row.version}: {row.event_id}")
    for eid, rows in places.items():
        if len(rows) > 1:
            where = ", ".join(f"{r.stream} v{r.version} (partition {r.partition})" for r in rows)
            report.add(DUPLICATE, "an event id stored twice", f"{eid} of {sent.get(eid, '?')} at {where}")
    for (stream, version), ids in holders.items():
        if len(ids) > 1:
            report.add(VIOLATION, "a version held by two events", f"{stream} v{version}: {sorted(ids)}")
    readable = {(r.stream, r.version, r.event_id) for r in view}
    for row in stored:
        if (row.stream, row.version, row.event_id) not in readable:
            report.add(
                VIOLATION,
                "a stored event that reads do not return",
                f"{row.stream} v{row.version} {row.event_id} (partition {row.partition})",
            )


def _streams(report: CheckReport, view: list[Row]) -> None:
    by_stream: defaultdict[str, list[Row]] = defaultdict(list)
    for row in view:
        by_stream[row.stream].append(row)
    for stream, rows in by_stream.items():
        rows.sort(key=lambda r: r.version)
        versions = [r.version for r in rows]
        if versions != list(range(1, len(rows) + 1)):
            report.add(VIOLATION, "a stream whose versions do not run 1..n", f"{stream}: {_runs(versions)}")
        for before, after in pairwise(rows):
            if after.position <= before.position:
                report.add(
                    VIOLATION,
                    "positions that do not rise with versions",
                    f"{stream} v{before.version} at {before.position}, v{after.version} at {after.position}",
                )


def _runs(versions: list[int]) -> str:
    """``1-4, 6, 6-9``: versions as runs, so a gap or a repeat shows at a glance."""
    parts: list[str] = []
    start = prev = None
    for v in versions:
        if prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = v
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(parts)


def _operation(report: CheckReport, op: Operation, by_id: dict[str, Row]) -> None:
    report.operations += 1
    report.invocations += len(op.attempts)
    for attempt in op.attempts:
        if attempt.outcome == OK:
            report.ok += 1
        elif attempt.outcome == FAIL:
            report.fail += 1
        elif attempt.outcome == INFO:
            report.info += 1
        else:
            report.unanswered += 1
    rows = [by_id.get(eid) for eid in op.event_ids]
    present = [r for r in rows if r is not None]
    name = f"{op.op} ({op.kind} on {op.stream}, expected {op.expected}, {len(op.event_ids)} events)"
    if present and len(present) != len(rows):
        report.add(VIOLATION, "an append stored in part", f"{name}: {len(present)} of {len(rows)} events stored")
    if present and (
        any(r.stream != op.stream for r in present)
        or [r.version for r in present] != list(range(present[0].version, present[0].version + len(present)))
    ):
        where = [(r.stream, r.version) for r in present]
        report.add(VIOLATION, "an append not stored as one run of versions", f"{name}: at {where}")
    outcome = op.outcome
    if op.unknown_attempts and outcome in (OK, FAIL):
        report.resolved += 1
    if outcome == OK:
        ack = op.acknowledged
        assert ack is not None
        report.events_acknowledged += len(rows)
        for eid, row in zip(op.event_ids, rows, strict=True):
            if row is None:
                where = f"acknowledged as part of v{ack.first_version}-{ack.last_version}"
                report.add(LOST, "an acknowledged event is missing", f"{name}: {eid}, {where}")
        if (
            present
            and ack.first_version is not None
            and (present[0].version, present[-1].version)
            != (
                ack.first_version,
                ack.last_version,
            )
        ):
            report.add(
                VIOLATION,
                "an append acknowledged at other versions than stored",
                f"{name}: acknowledged v{ack.first_version}-{ack.last_version}, "
                f"stored v{present[0].version}-{present[-1].version}",
            )
    elif outcome == FAIL:
        if present:
            refusal = next(a.error for a in op.attempts if a.outcome == FAIL)
            report.add(VIOLATION, "a refused append is stored", f"{name}: refused with {refusal}")
    else:
        report.unresolved += 1


def _projection(
    report: CheckReport, log: ProjectionLog, view: list[Row], histories: Histories, newest_ack: int
) -> None:
    by_id = {row.event_id: row for row in view}
    ops = {eid: op for op in histories.operations.values() for eid in op.event_ids}
    seen: Counter[str] = Counter()
    last_version: dict[str, int] = {}
    for settle in log.settles:
        for s in settle.seen:
            report.events_seen += 1
            seen[s.event_id] += 1
            if seen[s.event_id] == 2:
                report.add(DUPLICATE, "a projection saw an event twice", f"{log.process}: {s}")
            row = by_id.get(s.event_id)
            if row is None:
                report.add(VIOLATION, "a projection saw an event that is not stored", f"{log.process}: {s}")
            elif (row.stream, row.version, row.position) != (s.stream, s.version, s.position):
                report.add(VIOLATION, "a projection saw an event elsewhere than stored", f"{log.process}: {s}, {row}")
            if s.stream in last_version and s.version <= last_version[s.stream]:
                report.add(
                    VIOLATION,
                    "a projection saw a stream out of version order",
                    f"{log.process}: {s.stream} v{s.version} after v{last_version[s.stream]}",
                )
            last_version[s.stream] = max(s.version, last_version.get(s.stream, 0))
            if s.position > settle.position:
                report.add(VIOLATION, "a projection read past its settled position", f"{log.process}: {s}")
    settled = log.settled
    for row in sorted(view, key=lambda r: r.position):
        if row.position > settled or seen[row.event_id]:
            continue
        op = ops.get(row.event_id)
        # expected: every event after its start position, and every event appended after it
        # started, wherever its position (one below the start position was committed late)
        if row.position > log.start or (op is not None and op.attempts[0].invoked > log.started_at):
            report.add(SKIPPED, "a projection never saw an event below its settled position", _skip(log, row, ops))
    if not log.done:
        began = f"; its last settle call began at {log.last_call:.3f}" if log.last_call else ""
        report.add(
            VIOLATION, "the feed stalled", f"{log.process}: its last catch-up never finished (settled {settled}){began}"
        )
    elif settled < newest_ack:
        report.add(
            VIOLATION,
            "the feed stalled",
            f"{log.process}: settled at {settled} after the writers stopped, below the newest acknowledged "
            f"position {newest_ack}",
        )


def _skip(log: ProjectionLog, row: Row, ops: dict[str, Operation]) -> str:
    """Which settled position passed the event, and when the event was acknowledged."""
    passed = next((s for s in log.settles if s.position >= row.position), None)
    text = f"{log.process}: {row.stream} v{row.version} at position {row.position}"
    if passed is not None:
        text += f", passed by settled position {passed.position} (returned at {passed.returned:.3f})"
    op = ops.get(row.event_id)
    if op is None:
        return text
    ack = op.acknowledged
    if ack is not None and ack.completed is not None and passed is not None:
        delay = ack.completed - passed.returned
        text += f"; {op.op} was acknowledged {abs(delay):.3f} s {'after' if delay > 0 else 'before'} that"
    else:
        text += f"; {op.op} ended {op.outcome}"
    return text
