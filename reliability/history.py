"""Histories: what every client process did, as Jepsen records it, one JSON object a line.

A writer logs an ``invoke`` line before each append attempt and a completion line after it:
``ok`` (the store answered with versions), ``fail`` (a definite refusal, e.g.
``ConcurrencyError``) or ``info`` (the outcome is unknown: a timeout, a lost connection, any
error after the request may have been sent). Each line is flushed before the next step, so a
client killed mid-append leaves its invocation behind with no completion. A retry of an
unknown outcome is a new attempt of the *same* operation (same op id, same event ids).

A projection logs ``start`` (the position it starts after), one ``settled`` line per
``settled_position()`` call, a ``seen`` line with the events it then read up to that position,
``error`` lines for reads that failed, and ``done`` when its last catch-up, after the writers
stopped, finished.

``load`` reads a directory of history files back into operations and projection logs; a torn
last line (a process killed while writing it) is ignored.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

OK, FAIL, INFO = "ok", "fail", "info"
OUTCOMES = (OK, FAIL, INFO)


class HistoryWriter:
    """Appends records to one process's history file, each flushed as it is written."""

    def __init__(self, path: Path, process: str) -> None:
        self.path = path
        self.process = process
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        record = {"process": self.process, "time": time.time(), **record}
        # one write() per line: a kill leaves whole lines, or a torn last one that `load` drops
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


@dataclass
class Attempt:
    """One invocation of an operation and its completion (``outcome`` None: none was logged)."""

    number: int
    process: str
    invoked: float
    outcome: str | None = None
    completed: float | None = None
    first_version: int | None = None
    last_version: int | None = None
    position: int | None = None
    duplicate: bool = False
    error: str = ""


@dataclass
class Operation:
    """An append and every attempt at it (the first, then retries with the same event ids)."""

    op: str
    kind: str  # exact | any | no_stream | batch
    stream: str
    expected: int | str  # an int, "any" or "no_stream"
    event_ids: list[str]
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """``ok`` if an attempt landed, ``fail`` if one was refused, else ``info`` (unknown)."""
        done = [a.outcome for a in self.attempts]
        if OK in done:
            return OK
        if FAIL in done:
            return FAIL
        return INFO

    @property
    def acknowledged(self) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == OK), None)

    @property
    def unknown_attempts(self) -> int:
        """Attempts whose outcome the client never learnt (an ``info`` or no completion at all)."""
        return sum(1 for a in self.attempts if a.outcome in (INFO, None))


@dataclass(frozen=True)
class Seen:
    stream: str
    version: int
    event_id: str
    position: int


@dataclass
class Settle:
    position: int
    started: float
    returned: float
    seen: list[Seen] = field(default_factory=list)  # read after this settle, up to its position


@dataclass
class ProjectionLog:
    process: str
    start: int = 0
    started_at: float = 0.0  # when it logged its start (every append invoked later must be seen)
    settles: list[Settle] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    done: bool = False
    last_call: float | None = None  # when its last settle call began (a stall shows here)

    @property
    def seen(self) -> list[Seen]:
        return [s for settle in self.settles for s in settle.seen]

    @property
    def settled(self) -> int:
        return max((s.position for s in self.settles), default=self.start)


@dataclass
class Histories:
    operations: dict[str, Operation] = field(default_factory=dict)
    projections: dict[str, ProjectionLog] = field(default_factory=dict)
    torn_lines: int = 0

    def streams(self) -> set[str]:
        return {op.stream for op in self.operations.values()}


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The whole records of one file, and how many lines could not be read (a torn last line)."""
    records, torn = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    return records, torn


def load(directory: Path) -> Histories:
    """Every ``*.jsonl`` history in ``directory``, merged."""
    histories = Histories()
    for path in sorted(directory.glob("*.jsonl")):
        records, torn = read_records(path)
        histories.torn_lines += torn
        for record in records:
            add(histories, record)
    for op in histories.operations.values():
        op.attempts.sort(key=lambda a: a.number)  # a resumed operation's attempts span two files
    return histories


def add(histories: Histories, record: dict[str, Any]) -> None:
    """Fold one record into ``histories`` (records of one process arrive in order)."""
    kind = record["type"]
    if kind == "invoke":
        op = histories.operations.get(record["op"])
        if op is None:
            op = Operation(record["op"], record["kind"], record["stream"], record["expected"], list(record["ids"]))
            histories.operations[op.op] = op
        op.attempts.append(Attempt(record["attempt"], record["process"], record["time"]))
    elif kind in OUTCOMES:
        op = histories.operations[record["op"]]
        attempt = next(a for a in op.attempts if a.number == record["attempt"])
        attempt.outcome, attempt.completed = kind, record["time"]
        attempt.first_version = record.get("first")
        attempt.last_version = record.get("last")
        attempt.position = record.get("position")
        attempt.duplicate = bool(record.get("duplicate", False))
        attempt.error = record.get("error", "")
    else:
        log = histories.projections.setdefault(record["process"], ProjectionLog(record["process"]))
        if kind == "start":
            log.start, log.started_at = record["position"], record["time"]
        elif kind == "calling":
            log.last_call = record["time"]
        elif kind == "settled":
            log.settles.append(Settle(record["position"], record["started"], record["time"]))
        elif kind == "seen":
            if not log.settles:
                raise ValueError(f"{record['process']}: events seen before any settled position")
            log.settles[-1].seen.extend(Seen(*item) for item in record["events"])
        elif kind == "error":
            log.errors.append(record["error"])
        elif kind == "done":
            log.done = True
        else:
            raise ValueError(f"unknown history record type {kind!r}")
