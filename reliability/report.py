"""What every scenario reports, and the table ``python -m reliability run`` prints.

Every scenario counts the same things, so one table compares them: the faults it injected
(kills, races, retries, malformed inputs, store failures, node kills, pauses, skewed clocks),
the operations the store or service answered, acknowledged events that were lost, events stored
twice, and broken invariants. The history-checked cluster scenarios also count operations whose
outcome stayed unknown to the client (``unknown``, not a failure by itself) and events a
projection never saw below its settled position (``skipped``). A run passes when lost,
duplicates, skipped and violations are zero everywhere and no scenario errored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

OK, FAILED, SKIPPED, ERROR = "ok", "failed", "skipped", "error"
MAX_NOTES = 12  # details kept per scenario: enough to start debugging, short enough to read


@dataclass
class ScenarioResult:
    scenario: str
    store: str
    fault_kind: str = "faults"
    ack_kind: str = "operations"
    faults: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    violations: int = 0
    unknown: int | None = None  # outcomes the client never learnt (history-checked scenarios only)
    unseen: int = 0  # events a projection skipped below its settled position
    seconds: float = 0.0
    skipped: str = ""  # why, when the scenario could not run here
    error: str = ""  # the exception that stopped the scenario, if any
    summary: str = ""  # one line: what was proved
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    grouped: dict[str, int] = field(default_factory=dict)  # "kind: category" -> how many

    @property
    def status(self) -> str:
        if self.error:
            return ERROR
        if self.skipped:
            return SKIPPED
        if self.lost or self.duplicates or self.violations or self.unseen:
            return FAILED
        return OK

    def problem(self, kind: str, text: str, category: str = "") -> None:
        """Count one lost event, duplicate or violation, keeping the first few descriptions;
        problems of one ``category`` are counted together and described once."""
        if kind == "lost":
            self.lost += 1
        elif kind == "duplicate":
            self.duplicates += 1
        elif kind == "violation":
            self.violations += 1
        elif kind == "skipped":
            self.unseen += 1
        else:
            raise ValueError(f"unknown problem kind {kind!r}")
        if category:
            key = f"{kind}: {category}"
            self.grouped[key] = self.grouped.get(key, 0) + 1
            if self.grouped[key] > 1:
                return
            text = f"{category}: {text}"
        if len(self.problems) < MAX_NOTES:
            self.problems.append(f"{kind}: {text}")

    def problem_lines(self) -> list[str]:
        """The problems as printed: a category's first example, with how many it stands for."""
        lines = []
        for line in self.problems:
            kind, _, text = line.partition(": ")
            category = text.split(": ", 1)[0]
            n = self.grouped.get(f"{kind}: {category}", 1)
            lines.append(f"{kind} x{n} {text}" if n > 1 else line)
        return lines

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status
        data["seconds"] = round(self.seconds, 2)
        return data


@contextmanager
def timed(result: ScenarioResult) -> Iterator[ScenarioResult]:
    """Time the block into ``result.seconds``; an exception becomes the scenario's error."""
    start = time.perf_counter()
    try:
        yield result
    except Exception as exc:  # the run reports a broken scenario rather than dying with it
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds += time.perf_counter() - start


def run_passed(results: list[ScenarioResult]) -> bool:
    return all(r.status in (OK, SKIPPED) for r in results)


def _n(value: int) -> str:
    return f"{value:,}"


_COLUMNS: list[tuple[str, int, Callable[[ScenarioResult], str]]] = [
    ("scenario", 20, lambda r: r.scenario),
    ("store", 9, lambda r: r.store),
    ("faults injected", 22, lambda r: "-" if r.skipped else f"{_n(r.faults)} {r.fault_kind}"),
    ("operations", 22, lambda r: "-" if r.skipped else f"{_n(r.acknowledged)} {r.ack_kind}"),
    ("unknown", 7, lambda r: "-" if r.unknown is None else _n(r.unknown)),
    ("lost", 5, lambda r: _n(r.lost)),
    ("dupl.", 5, lambda r: _n(r.duplicates)),
    ("skip.", 5, lambda r: _n(r.unseen)),
    ("viol.", 5, lambda r: _n(r.violations)),
    ("time", 7, lambda r: f"{r.seconds:.1f}s"),
    ("status", 7, lambda r: r.status),
]
_RIGHT = {"unknown", "lost", "dupl.", "skip.", "viol.", "time"}


def _row(cells: list[str]) -> str:
    parts = []
    for (name, width, _), cell in zip(_COLUMNS, cells, strict=True):
        parts.append(cell.rjust(width) if name in _RIGHT else cell.ljust(width))
    return "  ".join(parts).rstrip()


def format_table(results: list[ScenarioResult], *, header: str = "") -> str:
    """The run as a fixed-width table, a total line, then one line per scenario saying what it
    proved and the first problems found."""
    lines = [header] if header else []
    lines.append(_row([name for name, _, _ in _COLUMNS]))
    lines.append(_row(["-" * width for _, width, _ in _COLUMNS]))
    for r in results:
        lines.append(_row([cell(r) for _, _, cell in _COLUMNS]))
    ran = [r for r in results if not r.skipped]
    lines.append(_row(["-" * width for _, width, _ in _COLUMNS]))
    lines.append(
        _row(
            [
                "total",
                f"{len(ran)} run",
                f"{_n(sum(r.faults for r in ran))} faults",
                f"{_n(sum(r.acknowledged for r in ran))} operations",
                _n(sum(r.unknown or 0 for r in ran)),
                _n(sum(r.lost for r in results)),
                _n(sum(r.duplicates for r in results)),
                _n(sum(r.unseen for r in results)),
                _n(sum(r.violations for r in results)),
                f"{sum(r.seconds for r in results):.1f}s",
                "PASS" if run_passed(results) else "FAIL",
            ]
        )
    )
    lines.append("")
    for r in results:
        if r.skipped:
            lines.append(f"{r.scenario} ({r.store}): skipped: {r.skipped}")
            continue
        lines.append(f"{r.scenario} ({r.store}): {r.summary}" if r.summary else f"{r.scenario} ({r.store})")
        if r.error:
            lines.append(f"    error: {r.error}")
        for text in r.problem_lines():
            lines.append(f"    {text}")
    return "\n".join(lines)


def as_json(results: list[ScenarioResult], **extra: Any) -> str:
    return json.dumps(
        {
            **extra,
            "passed": run_passed(results),
            "totals": {
                "faults": sum(r.faults for r in results),
                "acknowledged": sum(r.acknowledged for r in results),
                "lost": sum(r.lost for r in results),
                "duplicates": sum(r.duplicates for r in results),
                "unknown": sum(r.unknown or 0 for r in results),
                "skipped_by_projection": sum(r.unseen for r in results),
                "violations": sum(r.violations for r in results),
                "seconds": round(sum(r.seconds for r in results), 2),
            },
            "scenarios": [r.as_dict() for r in results],
        },
        default=str,
    )
