"""Crashes: a writer process SIGKILLed at random points during appends, over and over, on one
SQLite file (so any damage would accumulate).

Each round starts ``reliability.crash_writer``, waits until it is appending, lets it run for a
seeded random delay while a reader in this process checks that no partial batch is ever visible,
then kills it with SIGKILL. The next writer first re-sends the batch that was in flight (as a
client whose request died with the server would). After every kill the store is reopened and
checked: ``PRAGMA integrity_check`` is ``ok``; every acknowledged append is stored exactly once,
at the versions it was acknowledged with; every stored batch is whole; every stored event was
written by some writer (nothing invented); versions run 1..N per stream; snapshots still read.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es_core import EventSourcingError, SQLiteStore

from .crash_writer import EVENT_TYPE
from .report import ScenarioResult, timed

READY_TIMEOUT = 20.0  # seconds for a writer to start appending
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ledger:
    """What the writers said: the batches they meant to append and the ones acknowledged."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    acks: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # batch -> stream, first, last
    ack_count: int = 0  # acknowledgements, retries included
    retries_acked: int = 0
    duplicates_recognised: int = 0
    snapshots: int = 0
    conflicts: int = 0

    def read(self, lines: list[str]) -> tuple[dict[str, Any] | None, bool]:
        """Apply one writer's log lines; returns its batch still in flight (intent, no ack), and
        whether the writer reached ``ready``."""
        in_flight: dict[str, Any] | None = None
        ready = False
        for line in lines:
            record = json.loads(line)
            op = record.pop("op")
            if op == "intent":
                self.intents[record["batch"]] = record
                in_flight = record
            elif op == "ack":
                acked = (record["stream"], record["first"], record["last"])
                earlier = self.acks.get(record["batch"])
                if earlier is not None and earlier != acked:
                    raise AssertionError(f"batch {record['batch']} acknowledged at {earlier}, then at {acked}")
                self.acks[record["batch"]] = acked
                self.ack_count += 1
                self.retries_acked += record["retry"]
                self.duplicates_recognised += record["duplicate"]
                if in_flight is not None and in_flight["batch"] == record["batch"]:
                    in_flight = None
            elif op == "snap":
                self.snapshots += 1
            elif op == "conflict":
                self.conflicts += 1
                in_flight = None
            elif op == "ready":
                ready = True
        return in_flight, ready


class Checker:
    """Checks the reopened store against the ledger, counting each distinct problem once."""

    def __init__(self, result: ScenarioResult) -> None:
        self.result = result
        self.seen: set[tuple[str, str]] = set()

    def problem(self, kind: str, key: str, text: str) -> None:
        if (kind, key) not in self.seen:
            self.seen.add((kind, key))
            self.result.problem(kind, text)

    def check(self, db: Path, ledger: Ledger, after_kill: int) -> dict[str, int]:
        try:
            store = SQLiteStore(db)
        except EventSourcingError as exc:
            self.problem("violation", f"open-{after_kill}", f"after kill {after_kill} the store does not open: {exc}")
            return {}
        try:
            return self._check(store, ledger, after_kill)
        finally:
            store.close()

    def _check(self, store: SQLiteStore, ledger: Ledger, kill: int) -> dict[str, int]:
        verdict = store.integrity_check()
        if verdict != "ok":
            self.problem("violation", f"integrity-{kill}", f"after kill {kill}: integrity_check says {verdict!r}")
        events = list(store.read_all(page_size=5000))
        by_batch: dict[str, list[Any]] = {}
        by_stream: dict[str, list[int]] = {}
        ids: Counter[object] = Counter(e.event_id for e in events)
        last_position = 0
        for e in events:
            if e.position <= last_position:
                self.problem("violation", f"order-{e.position}", f"position {e.position} after {last_position}")
            last_position = e.position
            by_stream.setdefault(e.stream_id, []).append(e.version)
            if e.event_type != EVENT_TYPE or "batch" not in e.data:
                self.problem("violation", f"alien-{e.event_id}", f"an event nobody wrote: {e.stream_id} v{e.version}")
                continue
            by_batch.setdefault(e.data["batch"], []).append(e)
        for event_id, n in ids.items():
            if n > 1:
                self.problem("duplicate", f"id-{event_id}", f"event id {event_id} stored {n} times")
        for stream, versions in by_stream.items():
            if versions != list(range(1, len(versions) + 1)):
                self.problem("violation", f"versions-{stream}", f"{stream}: versions are not 1..{len(versions)}")
            if store.stream_version(stream) != len(versions):
                self.problem("violation", f"head-{stream}", f"{stream}: stream_version disagrees with its events")
        for batch, stored in by_batch.items():
            intent = ledger.intents.get(batch)
            if intent is None:
                self.problem("violation", f"invented-{batch}", f"batch {batch} is stored but no writer sent it")
                continue
            indexes = sorted(e.data["index"] for e in stored)
            if indexes != list(range(intent["size"])):
                kind = "duplicate" if len(indexes) > intent["size"] else "violation"
                text = f"batch {batch} is partial: events {indexes} of {intent['size']} stored"
                self.problem(kind, f"partial-{batch}", text)
            versions = sorted(e.version for e in stored)
            if {e.stream_id for e in stored} != {intent["stream"]} or versions != list(
                range(versions[0], versions[0] + len(versions))
            ):
                self.problem("violation", f"split-{batch}", f"batch {batch} is not contiguous in {intent['stream']}")
        for batch, (stream, first, last) in ledger.acks.items():
            stored = by_batch.get(batch, [])
            if not stored:
                self.problem("lost", f"lost-{batch}", f"acknowledged batch {batch} ({stream} v{first}-{last}) is gone")
                continue
            where = (stored[0].stream_id, min(e.version for e in stored), max(e.version for e in stored))
            if where != (stream, first, last):
                self.problem(
                    "violation",
                    f"moved-{batch}",
                    f"batch {batch} acknowledged at {stream} v{first}-{last}, "
                    f"stored at {where[0]} v{where[1]}-{where[2]}",
                )
        for stream in by_stream:
            snapshot = store.latest_snapshot(stream)
            if snapshot is not None and snapshot.version > len(by_stream[stream]):
                self.problem("violation", f"snap-{stream}", f"{stream}: a snapshot is ahead of its stream")
        return {"events": len(events), "batches": len(by_batch)}


def _watch_partial(reader: SQLiteStore, after: int, until: float) -> tuple[int, int]:
    """Read the growing log until ``until``; every batch seen must be whole at the end of each
    pass (a pass ends at the head, which an atomic append never leaves mid-batch). Returns the
    last position read and the number of partial batches seen."""
    partial = 0
    while time.monotonic() < until:
        seen: Counter[str] = Counter()
        sizes: dict[str, int] = {}
        for e in reader.read_all(after=after, page_size=2000):
            seen[e.data.get("batch", "")] += 1
            sizes[e.data.get("batch", "")] = e.data.get("size", 0)
            after = e.position
        partial += sum(1 for batch, n in seen.items() if n != sizes[batch])
        time.sleep(0.003)
    return after, partial


def run_crash(
    workdir: Path, *, seed: int, kills: int = 100, time_limit: float = 600.0, streams: int = 16, max_delay: float = 0.12
) -> ScenarioResult:
    result = ScenarioResult("crash", "sqlite", fault_kind="SIGKILLs", ack_kind="appends")
    with timed(result):
        _run(result, workdir, seed, kills, time_limit, streams, max_delay)
    return result


def _run(
    result: ScenarioResult, workdir: Path, seed: int, kills: int, time_limit: float, streams: int, max_delay: float
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    db, log = workdir / "crash.db", workdir / "crash-writers.log"
    SQLiteStore.remove_files(db)
    log.unlink(missing_ok=True)
    rng = random.Random(f"crash:{seed}")
    ledger, checker = Ledger(), Checker(result)
    deadline = time.monotonic() + time_limit
    in_flight: dict[str, Any] | None = None
    landed_mid_kill = not_landed = partial_seen = 0
    figures: dict[str, int] = {}
    SQLiteStore(db).close()  # the schema exists before the first reader opens the file
    reader = SQLiteStore(db)
    read_upto = 0
    try:
        for life in range(kills):
            if time.monotonic() > deadline:
                result.error = f"time limit of {time_limit:.0f}s reached after {life} of {kills} kills"
                break
            synchronous = "normal" if life % 4 == 3 else "full"  # both must survive a process crash
            offset = log.stat().st_size if log.exists() else 0
            command = [
                sys.executable,
                "-m",
                "reliability.crash_writer",
                "--db",
                str(db),
                "--log",
                str(log),
                "--seed",
                f"{seed}:{life}",
                "--life",
                str(life),
                "--streams",
                str(streams),
                "--synchronous",
                synchronous,
            ]
            if in_flight is not None:
                command += ["--resend", json.dumps(in_flight)]
            writer = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                _wait_ready(log, offset, writer)
                until = time.monotonic() + rng.uniform(0.002, max_delay)
                read_upto, partial = _watch_partial(reader, read_upto, until)
                partial_seen += partial
            finally:
                writer.send_signal(signal.SIGKILL)
                _, stderr = writer.communicate(timeout=30)
            if writer.returncode != -signal.SIGKILL:
                raise RuntimeError(f"writer {life} ended by itself ({writer.returncode}): {stderr.decode()[-800:]}")
            result.faults += 1
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read().decode()
            complete = chunk[: chunk.rfind("\n") + 1]  # a kill cannot tear a line; be safe anyway
            in_flight, _ = ledger.read(complete.splitlines())
            if in_flight is not None:
                stored = _batch_stored(db, in_flight)
                landed_mid_kill += stored
                not_landed += not stored
            figures = checker.check(db, ledger, life + 1)
    finally:
        reader.close()
    if partial_seen:
        result.problem("violation", f"a concurrent reader saw {partial_seen} partial batches")
    result.acknowledged = ledger.ack_count
    result.figures = {
        "kills": result.faults,
        "acknowledged_appends": ledger.ack_count,
        "distinct_batches_acked": len(ledger.acks),
        "retries_acknowledged": ledger.retries_acked,
        "retries_recognised_as_duplicates": ledger.duplicates_recognised,
        "in_flight_at_kill_landed": landed_mid_kill,
        "in_flight_at_kill_not_landed": not_landed,
        "snapshots_saved": ledger.snapshots,
        "events_stored": figures.get("events", 0),
        "database_bytes": db.stat().st_size + (Path(f"{db}-wal").stat().st_size if Path(f"{db}-wal").exists() else 0),
    }
    result.summary = (
        f"{result.faults} SIGKILLs mid-append ({landed_mid_kill} with the batch in flight landed, {not_landed} not); "
        f"{ledger.ack_count:,} acknowledged appends ({ledger.retries_acked} client retries, "
        f"{ledger.duplicates_recognised} recognised as duplicates), {figures.get('events', 0):,} events; "
        "integrity_check ok, every batch whole, versions contiguous, after every kill"
        if not (result.lost or result.duplicates or result.violations)
        else "see problems below"
    )


def _wait_ready(log: Path, offset: int, writer: subprocess.Popen[bytes]) -> None:
    """Wait until this writer logged ``ready``: it is past start-up and appending."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if writer.poll() is not None:
            raise RuntimeError(f"the writer exited before appending: {writer.stderr.read().decode()[-800:]}")  # type: ignore[union-attr]
        if log.exists():
            with open(log, "rb") as f:
                f.seek(offset)
                if b'"op":"ready"' in f.read():
                    return
        time.sleep(0.002)
    raise RuntimeError(f"the writer did not start appending within {READY_TIMEOUT:.0f}s")


def _batch_stored(db: Path, intent: dict[str, Any]) -> bool:
    with SQLiteStore(db) as store:
        return any(
            e.data.get("batch") == intent["batch"]
            for e in store.read_stream(intent["stream"], reverse=True, limit=intent["size"] + 5)
        )
