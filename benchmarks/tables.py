"""Saved benchmark results (``results/latest.json``) as the Markdown tables of the README and
``results/README.md``.

The saved JSON is the interface to everything else that reads the figures (the workbench's
charts read the file, never this package): each headline figure carries its ``label`` and
``unit`` beside the implementations' numbers (``FIGURES``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS_FILE = Path(__file__).resolve().parent / "results" / "latest.json"

FIGURES = (  # key in the results, label, unit of the throughput
    ("append", "append, 1 event per command (durable)", "events_per_s"),
    ("batch_append", "batch append", "events_per_s"),
    ("load", "load, full replay", "aggregates_per_s"),
    ("load_snapshots", "load with snapshots", "aggregates_per_s"),
    ("read_all", "global log read", "events_per_s"),
    ("projection_rebuild", "projection rebuild", "events_per_s"),
)


def load_results(source: str | Path | dict[str, Any] | None = None) -> dict[str, Any]:
    """The saved results (``{"run": ..., "scaling": ...}``), from a path, a dict, or the default file."""
    if isinstance(source, dict):
        return source
    return json.loads(Path(source or RESULTS_FILE).read_text())


def _suite(results: dict[str, Any], name: str) -> dict[str, Any]:
    return results.get(name) or (results if results.get("suite") == name else {})


def snapshot_cost_rows(source: str | Path | dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Append throughput lost to snapshotting, per interval and implementation."""
    scaling = _suite(load_results(source), "scaling")
    rows = []
    for entry in scaling.get("append", []):
        for impl in ("es_core", "peer"):
            if impl in entry:
                rows.append({"snapshot_every": entry["snapshot_every"], "implementation": impl, **entry[impl]})
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    return str(value)


def markdown_table(source: str | Path | dict[str, Any] | None = None) -> str:
    """The latest ``run`` figures as a Markdown table, with the machine, date and command."""
    run = _suite(load_results(source), "run")
    if not run.get("results"):
        return "(no run results)"
    results = run["results"]
    lines = [
        "| figure | es_core | sqlite3 floor | eventsourcing (peer) | es_core / floor | es_core / peer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label, unit in FIGURES:
        figure = results.get(key)
        if not figure:
            continue
        cells = [_fmt(figure.get(impl, {}).get(unit)) for impl in ("es_core", "floor", "peer")]
        suffix = " aggregates/s" if unit == "aggregates_per_s" else " events/s"
        lines.append(f"| {label} ({suffix.strip()}) | " + " | ".join(cells) + " | "
                     f"{_fmt(figure.get('ratio_to_floor'))} | {_fmt(figure.get('ratio_to_peer'))} |")
    append = results.get("append", {})
    if "floor_with_id_key" in append:
        lines.append(f"| append vs the floor plus a unique event-id key (events/s) | "
                     f"{_fmt(append.get('es_core', {}).get('events_per_s'))} | "
                     f"{_fmt(append['floor_with_id_key'].get('events_per_s'))} | | "
                     f"{_fmt(append.get('ratio_to_floor_with_id_key'))} | |")
    for key in ("load", "load_snapshots"):
        figure = results.get(key, {})
        if figure.get("es_core"):
            cells = [_latencies(figure.get(impl, {})) for impl in ("es_core", "floor", "peer")]
            lines.append(f"| {key.replace('_', ' ')} p50 / p99 (ms) | " + " | ".join(cells) + " | | |")
    cost = results.get("snapshot_cost", {})
    if cost:
        lines.append(f"| append throughput lost to snapshots (every {cost.get('snapshot_every')}) | "
                     f"{_pct(cost.get('es_core', {}).get('cost'))} | | {_pct(cost.get('peer', {}).get('cost'))} | | |")
    machine = run.get("machine", {})
    lines += [
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('ram_gb')} GB RAM, "
        f"{machine.get('os')}, Python {machine.get('python')}, SQLite {machine.get('sqlite')}, "
        f"filesystem {machine.get('filesystem')}, load average {machine.get('load_average')}.",
        f"Date: {machine.get('date')} (commit {machine.get('commit')}). Command: `{run.get('command')}`.",
    ]
    return "\n".join(lines)


def scaling_markdown(source: str | Path | dict[str, Any] | None = None) -> str:
    """The latest ``scaling`` figures as Markdown: load p50 as history grows, snapshot cost."""
    scaling = _suite(load_results(source), "scaling")
    rows = scaling.get("load", [])
    if not rows:
        return "(no scaling results)"
    impls = [i for i in ("es_core", "floor", "peer") if any(r["implementation"] == i for r in rows)]
    p50 = {(r["events_per_aggregate"], r["implementation"], r["snapshots"]): r["p50_ms"] for r in rows}
    lines = ["| events per aggregate | " + " | ".join(f"{i} full / snapshots (p50 ms)" for i in impls) + " |",
             "|---:|" + "---:|" * len(impls)]
    for size in sorted({r["events_per_aggregate"] for r in rows}):
        cells = [f"{_fmt(p50.get((size, i, False)))} / {_fmt(p50.get((size, i, True)))}" for i in impls]
        lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
    costs = snapshot_cost_rows(scaling)
    if costs:
        lines += ["", "| snapshot every | " + " | ".join(sorted({c["implementation"] for c in costs})) + " |",
                  "|---:|" + "---:|" * len({c["implementation"] for c in costs})]
        for every in sorted({c["snapshot_every"] for c in costs}):
            by_impl = {c["implementation"]: c["cost"] for c in costs if c["snapshot_every"] == every}
            lines.append(f"| {every} | " + " | ".join(_pct(by_impl.get(i)) for i in sorted(by_impl)) + " |")
    sim = scaling.get("simulator", {})
    if sim.get("rows"):
        lines += ["", "Simulator: " + "; ".join(
            f"{r['members']:,} members × {r['days']} days, {r['events']:,} events at {_fmt(r['events_per_s'])} events/s"
            for r in sim["rows"]) + f" (SQLite, synchronous={sim.get('synchronous')})."]
    machine = scaling.get("machine", {})
    lines += ["", f"Date: {machine.get('date')} (commit {machine.get('commit')}), load average "
                  f"{machine.get('load_average')}. Command: `{scaling.get('command')}`."]
    return "\n".join(lines)


def _latencies(figure: dict[str, Any]) -> str:
    return f"{_fmt(figure.get('p50_ms'))} / {_fmt(figure.get('p99_ms'))}" if figure else "–"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"
