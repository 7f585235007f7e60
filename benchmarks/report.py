"""Machine facts, robust statistics and ratios for the benchmark report.

Ratios are always *throughput* ratios: es_core's events (or aggregates) per second divided by
the other's, so above 1 means es_core is faster. A ratio is the median of per-round ratios
(each round runs every implementation back to back), which cancels most of the drift a shared
machine adds; the absolute figures are medians over rounds.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank on sorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def paired_ratio(ours: Sequence[float], theirs: Sequence[float]) -> float | None:
    """Median of round-by-round ratios ours/theirs (rounds where both ran)."""
    pairs = [a / b for a, b in zip(ours, theirs, strict=False) if a and b]
    return rounded(median(pairs), 3)


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def machine_info(workdir: Path | None = None) -> dict[str, Any]:
    """What the figures were measured on; enough to tell two runs' machines apart."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "msgspec": _version("msgspec"),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "load_average": _load_average(),
    }
    if workdir is not None:
        info["filesystem"] = filesystem_type(workdir)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def filesystem_type(path: Path) -> str | None:
    """The filesystem holding ``path`` (from /proc/mounts): fsync on tmpfs is free, so a run
    there says nothing about durable appends."""
    try:
        target = str(path.resolve())
        best = ("", None)
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
                if len(parts[1]) >= len(best[0]):
                    best = (parts[1], parts[2])
        return best[1]
    except OSError:
        return None


def command_line() -> str:
    return "python -m benchmarks " + " ".join(sys.argv[1:])
