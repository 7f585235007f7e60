"""Subscription figures: catch-up from zero against a raw ``sqlite3`` floor, and live lag.

**Catch-up** (events/s). A subscription (``es_core.subscriptions``) reads the benchmark's
es_core file from position 0 in pages of ``PAGE`` events and keeps a read model (licences
acquired per title and studio, and releases) in its own SQLite file, committing the model's
rows and its checkpoint in one transaction per page. Its handler reads the stored payload
(``record.data``) of the events it counts; no typed decoding. The subscription hands over
stored rows and decodes a payload when the handler first reads it, so metadata, and the data of
events the model ignores, are never decoded: ``decoding_all`` is a second es_core handler that
reads both payloads of every event first, the floor's decoding work. The floor does the same
work with nothing in between: plain ``sqlite3`` selects the same columns page by page, decodes
payload and metadata with msgspec (as the store does), writes the same rows with the same
statements and a checkpoint row, and commits once per page. Both start from an empty read-model file each round.

**Live lag** (ms). ``python -m downloads simulate`` writes a seeded simulation into a durable
SQLite store at its own pace while a subscription in this process follows it live
(``Subscription.run``, polling every 1-10 ms). The lag of an event is the moment its page committed
minus its ``recorded_at``: append to read model, end to end. Measured with the checkpoints (and
read model) in a separate file and in the store's own file.
"""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from es_core import SQLiteStore
from es_core.subscriptions import Delivery, SQLiteCheckpoints, Subscription
from es_core.subscriptions.checkpoints import Page

from . import report

PAGE = 1000
MODEL = """
CREATE TABLE IF NOT EXISTS title_activity (title_id TEXT PRIMARY KEY, studio TEXT NOT NULL, acquired INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS released (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
"""
_ACQUIRED = ("INSERT INTO title_activity VALUES (?, ?, 1)"
             " ON CONFLICT (title_id) DO UPDATE SET acquired = acquired + 1")
_RELEASED = "INSERT INTO released VALUES (1, 1) ON CONFLICT (one) DO UPDATE SET n = n + 1"
_decode = msgspec.json.decode
ROOT = Path(__file__).resolve().parent.parent
Log = Callable[[str], None]


def measure(es_core_db: Path, workdir: Path, rounds: int, log: Log, *, lag_members: int = 100,
            lag_days: int = 60, seed: int = 7) -> dict[str, Any]:
    """Both figures, as one JSON-ready dict."""
    log("subscription catch-up from zero vs the sqlite3 floor")
    catch_up = catch_up_figure(es_core_db, workdir, rounds, log)
    log(f"live lag under the downloads simulator ({lag_members} members x {lag_days} days, durable)")
    lag = {where: live_lag(workdir, lag_members, lag_days, seed, beside=where == "beside_the_store")
           for where in ("separate_file", "beside_the_store")}
    return {"catch_up": catch_up, "live_lag": lag}


# -- catch-up --------------------------------------------------------------------------------


def _handle(d: Delivery) -> None:
    kind = d.record.event_type
    if kind == "LicenseAcquired":
        data = d.record.data  # the benchmark workload says "studio", the domain's events "studio_id"
        d.tx.execute(_ACQUIRED, (data["title_id"], data.get("studio") or data["studio_id"]))
    elif kind == "LicenseReleased":
        d.tx.execute(_RELEASED)


def _handle_decoding_all(d: Delivery) -> None:
    """``_handle`` reading both payloads of every event, as the floor decodes them."""
    record = d.record
    data, _ = record.data, record.metadata
    kind = record.event_type
    if kind == "LicenseAcquired":
        d.tx.execute(_ACQUIRED, (data["title_id"], data.get("studio") or data["studio_id"]))
    elif kind == "LicenseReleased":
        d.tx.execute(_RELEASED)


Round = tuple[int, int, int, list[tuple[Any, ...]]]  # events, wall ns, CPU ns, the read model's rows


def _es_core_round(es_core_db: Path, model_db: Path, handle: Callable[[Delivery], None] = _handle) -> Round:
    SQLiteStore.remove_files(model_db)
    store, checkpoints = SQLiteStore(es_core_db), SQLiteCheckpoints(model_db)
    checkpoints.db.executescript(MODEL)
    try:
        subscription = Subscription(store, checkpoints, "title-activity", handle, page_size=PAGE)
        gc.collect()
        start, cpu = time.perf_counter_ns(), time.process_time_ns()
        count = subscription.catch_up()
        elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu
        return count, elapsed, cpu, _model_rows(checkpoints.db)
    finally:
        checkpoints.close()
        store.close()


def _floor_round(es_core_db: Path, model_db: Path) -> Round:
    SQLiteStore.remove_files(model_db)
    source = sqlite3.connect(es_core_db, isolation_level=None)
    target = sqlite3.connect(model_db, isolation_level=None)
    target.execute("PRAGMA journal_mode = WAL")
    target.execute("PRAGMA synchronous = FULL")
    target.executescript(MODEL + "CREATE TABLE checkpoint (name TEXT PRIMARY KEY, position INTEGER NOT NULL);")
    target.execute("INSERT INTO checkpoint VALUES ('title-activity', 0)")
    try:
        gc.collect()
        start, cpu = time.perf_counter_ns(), time.process_time_ns()
        count, after = 0, 0
        while True:
            rows = source.execute(
                "SELECT stream_id, version, position, event_id, event_type, schema_version, data, metadata,"
                " recorded_at FROM events WHERE position > ? ORDER BY position LIMIT ?", (after, PAGE)
            ).fetchall()
            if not rows:
                break
            target.execute("BEGIN IMMEDIATE")
            for row in rows:
                data = _decode(row[6])
                _decode(row[7])
                if row[4] == "LicenseAcquired":
                    target.execute(_ACQUIRED, (data["title_id"], data["studio"]))
                elif row[4] == "LicenseReleased":
                    target.execute(_RELEASED)
            after = rows[-1][2]
            target.execute("UPDATE checkpoint SET position = ? WHERE name = 'title-activity'", (after,))
            target.execute("COMMIT")
            count += len(rows)
        elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu
        return count, elapsed, cpu, _model_rows(target)
    finally:
        source.close()
        target.close()


def _model_rows(db: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [*db.execute("SELECT * FROM title_activity ORDER BY title_id"), *db.execute("SELECT n FROM released")]


def catch_up_figure(es_core_db: Path, workdir: Path, rounds: int, log: Log) -> dict[str, Any]:
    """Twice ``rounds`` and one (a round is about a second; the wall-clock figures swing by 2x
    between rounds on a shared machine), the order rotating each round so that every run takes
    every slot; besides the median rates, the median of each round's own ratio (the runs were
    back to back, so they met the same disk and neighbours) and the ratio of CPU time (what the
    code costs, without waits for fsync or other processes)."""
    runs: dict[str, Callable[[Path, Path], Round]] = {
        "es_core": _es_core_round, "floor": _floor_round,
        "es_core_decoding_all": lambda db, model: _es_core_round(db, model, _handle_decoding_all),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    models: dict[str, list[tuple[Any, ...]]] = {}
    rounds = 2 * rounds + 1
    for r in range(rounds):
        order = [*runs][r % len(runs):] + [*runs][:r % len(runs)]
        for name in order:
            count, elapsed, cpu_ns, rows = runs[name](es_core_db, workdir / f"subscription-{name}.db")
            rates[name].append(count / (elapsed / 1e9))
            cpu[name].append(cpu_ns / 1e9)
            models[name] = rows
        log(f"  subscription catch-up: round {r + 1}/{rounds}")
    for name in runs:
        SQLiteStore.remove_files(workdir / f"subscription-{name}.db")
    medians = {name: report.median(values) for name, values in rates.items()}
    ours, floor, decoding_all = medians["es_core"], medians["floor"], medians["es_core_decoding_all"]

    def paired(name: str) -> float | None:
        return report.rounded(report.median([a / b for a, b in zip(rates[name], rates["floor"], strict=True)]), 2)

    def cpu_ratio(name: str) -> float | None:
        return report.rounded(report.median([b / a for a, b in zip(cpu[name], cpu["floor"], strict=True) if a]), 2)

    return {
        "events_per_s": {name: report.rounded(value) for name, value in medians.items()},
        "per_round": {name: [round(x) for x in values] for name, values in rates.items()},
        "ratio_to_floor": round(ours / floor, 2) if ours and floor else None,
        "paired_ratio_to_floor": paired("es_core"),
        "cpu_ratio_to_floor": cpu_ratio("es_core"),
        # the same work as the floor: both payloads of every event decoded
        "decoding_all": {
            "ratio_to_floor": round(decoding_all / floor, 2) if decoding_all and floor else None,
            "paired_ratio_to_floor": paired("es_core_decoding_all"),
            "cpu_ratio_to_floor": cpu_ratio("es_core_decoding_all"),
        },
        "page_size": PAGE,
        "same_read_model": models["es_core"] == models["floor"] == models["es_core_decoding_all"],
    }


# -- live lag --------------------------------------------------------------------------------


class _TimedCheckpoints(SQLiteCheckpoints):
    """Notes the wall-clock moment each event's page committed (the simulator stamps events
    with simulated times, so ``recorded_at`` cannot serve)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pending: list[int] = []
        self.applied: dict[int, float] = {}
        self.deliveries = 0

    @contextmanager
    def page(self, name: str, owner: str, start: int, lease_until: float) -> Iterator[Page]:
        self.pending.clear()
        with super().page(name, owner, start, lease_until) as page:
            yield page
        now = time.time()
        for position in self.pending:
            self.applied[position] = now
        self.deliveries += len(self.pending)


class _StampedStore(SQLiteStore):
    """The simulator's store: notes the wall-clock moment each append returned, per position."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.appended: list[tuple[int, float]] = []

    def _append(self, *args: Any) -> Any:
        result = super()._append(*args)
        now = time.time()
        if result.last_position is not None and not result.duplicate:
            self.appended.extend((p, now) for p in range(result.last_position - result.count + 1,
                                                         result.last_position + 1))
        return result


def _simulate(db: str, members: int, days: int, seed: int, out: str) -> None:
    """The writer process: the downloads simulator into ``db``, append times into ``out``."""
    from downloads import simulate

    store = _StampedStore(Path(db))
    started = time.perf_counter()
    simulate(store, members=members, days=days, seed=seed, allow_existing=True)
    elapsed = time.perf_counter() - started
    Path(out).write_text(msgspec.json.encode({"elapsed": elapsed, "appended": store.appended}).decode())
    store.close()


def live_lag(workdir: Path, members: int, days: int, seed: int, *, beside: bool) -> dict[str, Any]:
    store_db, model_db = workdir / "subscription-live.db", workdir / "subscription-live-model.db"
    times = workdir / "subscription-live-appends.json"
    SQLiteStore.remove_files(store_db)
    SQLiteStore.remove_files(model_db)
    store = SQLiteStore(store_db)
    checkpoints = _TimedCheckpoints(store_db if beside else model_db)
    checkpoints.db.executescript(MODEL)

    def handle(d: Delivery) -> None:
        checkpoints.pending.append(d.position)
        _handle(d)

    subscription = Subscription(store, checkpoints, "title-activity-live", handle, page_size=500)
    thread, stop = subscription.run_in_thread()
    try:
        writer = subprocess.run(
            [sys.executable, "-c", "import sys; from benchmarks.subscriptions import _simulate; "
             "_simulate(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])",
             str(store_db), str(members), str(days), str(seed), str(times)],
            cwd=ROOT, capture_output=True, text=True, timeout=900,
        )
        if writer.returncode != 0:
            raise RuntimeError(f"the simulator failed: {writer.stderr.strip()[-500:]}")
        head = store.head_position()
        deadline = time.monotonic() + 60
        while subscription.position < head and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=60)
        checkpoints.close()
        store.close()
    written = msgspec.json.decode(times.read_bytes())
    times.unlink()
    lags = sorted((checkpoints.applied[p] - t) * 1000 for p, t in written["appended"] if p in checkpoints.applied)
    return {
        "events": len(written["appended"]),
        "applied": len(checkpoints.applied),
        "deliveries": checkpoints.deliveries,
        "events_per_s_written": round(len(written["appended"]) / written["elapsed"], 1),
        "p50_ms": report.rounded(report.percentile(lags, 50), 2),
        "p99_ms": report.rounded(report.percentile(lags, 99), 2),
        "max_ms": report.rounded(lags[-1], 2) if lags else None,
    }
