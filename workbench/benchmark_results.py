"""The project's saved benchmark figures (``benchmarks/results/latest.json``) as plain rows.

The file is the interface: ``python -m benchmarks run --save`` and ``scaling --save`` write it,
naming each headline figure's label and unit, and this module only reads it (the workbench never
imports the benchmark code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .settings import PROJECT_ROOT

RESULTS_FILE = PROJECT_ROOT / "benchmarks" / "results" / "latest.json"
IMPLEMENTATIONS = ("es_core", "floor", "floor_with_id_key", "peer")

Source = str | Path | dict[str, Any] | None
"""A results file, the parsed results, or None for the results saved with the project."""


def load_results(source: Source = None) -> dict[str, Any]:
    """The saved results (``{"run": ..., "scaling": ...}``)."""
    if isinstance(source, dict):
        return source
    return dict(json.loads(Path(source or RESULTS_FILE).read_text()))


def suite(results: dict[str, Any], name: str) -> dict[str, Any]:
    """One suite's result from the saved file (or a suite's result on its own)."""
    found = results.get(name) or (results if results.get("suite") == name else {})
    return dict(found)


def run_rows(source: Source = None) -> list[dict[str, Any]]:
    """The headline figures: one row per (figure, implementation) with its unit and es_core's
    ratios. A figure saved without a label or unit (older files) is named by its key, and its
    unit is the throughput its numbers carry."""
    rows = []
    for key, figure in suite(load_results(source), "run").get("results", {}).items():
        if not isinstance(figure, dict) or "es_core" not in figure or "floor" not in figure:
            continue  # not a throughput figure against the floor (snapshot cost)
        unit = figure.get("unit") or next(k for k in figure["es_core"] if k.endswith("_per_s"))
        for impl in IMPLEMENTATIONS:
            if impl in figure:
                rows.append({"figure": figure.get("label", key), "implementation": impl, "unit": unit,
                             "value": figure[impl].get(unit), "p50_ms": figure[impl].get("p50_ms"),
                             "p99_ms": figure[impl].get("p99_ms"), "ratio_to_floor": figure.get("ratio_to_floor"),
                             "ratio_to_peer": figure.get("ratio_to_peer")})
    return rows


def scaling_rows(source: Source = None) -> list[dict[str, Any]]:
    """Load latency against history length: one row per (size, implementation, snapshots)."""
    return [dict(row) for row in suite(load_results(source), "scaling").get("load", [])]
