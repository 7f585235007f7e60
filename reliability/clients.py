"""The client processes of the cluster scenarios: writers and projections, each recording its
history (``reliability.history``). Run as ``python -m reliability.clients CONFIG.json``; the
scenario runner (``reliability.cluster_scenarios``) writes the configuration and starts them.

A writer appends to a few shared streams, seeded: exact expected versions (read, then append),
``Expect.ANY``, ``Expect.NO_STREAM`` on streams several writers race to create, and exact
batches sized to cross a bucket boundary. An append whose outcome is unknown (any error but a
definite refusal) is retried with the same event ids and the same expected version until it is
answered or ``retry_seconds`` pass. A writer given ``resume`` first retries the operations a
killed writer left unresolved, under their op ids.

A projection does what ``ProjectionRunner`` does: ``settled_position()``, then ``read_all`` from
its last position up to the settled one; again and again until the runner creates the stop
file, then one last catch-up after the writers stopped, then ``done``.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from es_core import (
    ConcurrencyError,
    DuplicateEventIdError,
    EventStore,
    Expect,
    InvalidInputError,
    NewEvent,
    StoreUnavailableError,
)

from .history import FAIL, INFO, OK, HistoryWriter, read_records
from .nemesis import skewed_store

EVENT_TYPE = "Tick"
DEFINITE = (ConcurrencyError, DuplicateEventIdError, InvalidInputError)  # refused; nothing written


@dataclass
class ClientConfig:
    role: str  # writer | projection
    process: str
    url: str
    history: str
    stop: str  # a file whose existence tells the client to finish
    prefix: str = ""
    seed: int = 0
    clock_offset_s: float = 0.0
    streams: list[str] = field(default_factory=list)
    new_streams: list[str] = field(default_factory=list)
    own_streams: int = 2  # streams only this writer appends to
    operations: int = 0
    bucket_width: int = 10
    retry_seconds: float = 30.0
    pace_s: float = 0.01  # mean pause between a writer's appends
    resume: list[str] = field(default_factory=list)  # histories of killed writers

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.__dict__))
        return path

    @classmethod
    def load(cls, path: Path) -> ClientConfig:
        return cls(**json.loads(path.read_text()))


def events_of(op: str, ids: list[str]) -> list[NewEvent]:
    """The events of an operation: the same on every attempt, so a retry is recognised."""
    return [
        NewEvent(event_type=EVENT_TYPE, data={"op": op, "i": i}, event_id=uuid.UUID(eid)) for i, eid in enumerate(ids)
    ]


def _expected_value(expected: int | str) -> int | Expect:
    return {"any": Expect.ANY, "no_stream": Expect.NO_STREAM}.get(expected, expected)  # type: ignore[call-overload]


def perform(
    store: EventStore,
    log: HistoryWriter,
    op: str,
    kind: str,
    stream: str,
    expected: int | str,
    ids: list[str],
    *,
    first_attempt: int = 1,
    retry_seconds: float = 30.0,
) -> str:
    """Attempt the append until it is answered (``ok`` or ``fail``) or ``retry_seconds`` pass
    (``info``); every attempt is an invocation and a completion in the history."""
    events, value = events_of(op, ids), _expected_value(expected)
    deadline = time.monotonic() + retry_seconds
    attempt = first_attempt
    base = {"op": op}
    while True:
        log.write({"type": "invoke", **base, "attempt": attempt, "kind": kind, "stream": stream,
                   "expected": expected, "ids": ids})  # fmt: skip
        try:
            result = store.append(stream, events, value)
        except DEFINITE as exc:
            log.write({"type": FAIL, **base, "attempt": attempt, "error": _describe(exc)})
            return FAIL
        except Exception as exc:  # anything else may have landed: unknown, retried with the same ids
            log.write({"type": INFO, **base, "attempt": attempt, "error": _describe(exc)})
            if time.monotonic() > deadline:
                return INFO
            time.sleep(min(0.1 * attempt, 1.0))
            attempt += 1
            continue
        log.write({"type": OK, **base, "attempt": attempt, "first": result.first_version, "last": result.last_version,
                   "duplicate": result.duplicate, "position": result.last_position})  # fmt: skip
        return OK


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _read_version(store: EventStore, stream: str, deadline: float) -> int | None:
    """The stream's version, or None if it could not be read in time (nothing is invoked then)."""
    while time.monotonic() < deadline:
        try:
            return store.stream_version(stream)
        except Exception:  # a read under faults: no history entry, nothing was written
            time.sleep(0.1)
    return None


def run_writer(config: ClientConfig) -> None:
    rng = random.Random(f"{config.seed}:{config.process}")
    store = _open(config)
    log = HistoryWriter(Path(config.history), config.process)
    try:
        for path in config.resume:
            resume(store, log, Path(path), config.retry_seconds)
        stop = Path(config.stop)
        for k in range(config.operations):
            if stop.exists():
                break
            _one_operation(store, log, rng, config, f"{config.process}-{k}")
            time.sleep(rng.expovariate(1 / config.pace_s) if config.pace_s else 0)
    finally:
        log.close()
        store.close()


def _one_operation(store: EventStore, log: HistoryWriter, rng: random.Random, config: ClientConfig, op: str) -> None:
    r = rng.random()
    count = rng.randint(1, 3)
    # shared streams make writers race; its own streams are where a writer's clock alone decides
    # its positions (as with member streams, which one server at a time usually writes)
    own = [f"{config.prefix}-{config.process}-own{k}" for k in range(config.own_streams)]
    streams = own if own and rng.random() < 0.5 else config.streams
    expected: int | str
    if r < 0.15 and config.new_streams:
        kind, stream, expected = "no_stream", rng.choice(config.new_streams), "no_stream"
    elif r < 0.35:
        kind, stream, expected = "any", rng.choice(streams), "any"
    else:
        kind, stream = ("batch" if r < 0.6 else "exact"), rng.choice(streams)
        version = _read_version(store, stream, time.monotonic() + config.retry_seconds)
        if version is None:
            return
        expected = version
        if kind == "batch":  # from here to past the next bucket boundary
            count = config.bucket_width - version % config.bucket_width + rng.randint(1, 4)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]
    perform(store, log, op, kind, stream, expected, ids, retry_seconds=config.retry_seconds)


def resume(store: EventStore, log: HistoryWriter, history: Path, retry_seconds: float) -> int:
    """Retry, with their own ids and expected versions, the operations a killed writer left
    without an answer; returns how many."""
    records, _ = read_records(history)
    pending: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["type"] == "invoke":
            pending[record["op"]] = record
        elif record["type"] in (OK, FAIL):
            pending.pop(record["op"], None)
    for record in pending.values():
        perform(store, log, record["op"], record["kind"], record["stream"], record["expected"], record["ids"],
                first_attempt=record["attempt"] + 1, retry_seconds=retry_seconds)  # fmt: skip
    return len(pending)


def _open(config: ClientConfig, attempts: int = 6) -> EventStore:
    """The client's store handle; a cluster slow to answer (a loaded machine) is asked again."""
    for attempt in range(1, attempts + 1):
        try:
            return skewed_store(config.url, timedelta(seconds=config.clock_offset_s))
        except StoreUnavailableError:
            if attempt == attempts:
                raise
            time.sleep(5 * attempt)
    raise AssertionError("unreachable")


def run_projection(config: ClientConfig) -> None:
    store = _open(config)
    log = HistoryWriter(Path(config.history), config.process)
    stop = Path(config.stop)
    try:
        position = None
        while position is None:
            try:
                position = _settle(store, wait=False)
            except Exception:
                time.sleep(0.2)
        log.write({"type": "start", "position": position})
        while not stop.exists():
            position, _ = _catch_up(store, log, config.prefix, position)
            time.sleep(0.05)
        finished = False
        while not finished:  # the last catch-up, after the writers stopped, must complete
            position, finished = _catch_up(store, log, config.prefix, position)
            if not finished:
                time.sleep(0.2)
        log.write({"type": "done"})
    finally:
        log.close()
        store.close()


def _settle(store: EventStore, *, wait: bool) -> int:
    """``settled_position``; only the Cassandra store's can wait (on the others it is the head)."""
    return store.settled_position(wait=wait) if store.scheme == "cassandra" else store.settled_position()  # type: ignore[call-arg]


def _catch_up(store: EventStore, log: HistoryWriter, prefix: str, position: int) -> tuple[int, bool]:
    """Settle, then read up to the settled position; returns the position reached and whether
    the catch-up completed (a failed one keeps the position of the last event it handled)."""
    log.write({"type": "calling"})
    started = time.time()
    try:
        settled = _settle(store, wait=True)
    except Exception as exc:
        log.write({"type": "error", "error": f"settle: {_describe(exc)}"})
        return position, False
    log.write({"type": "settled", "position": settled, "started": started})
    seen: list[list[Any]] = []
    try:
        for record in store.read_all(after=position):
            if record.position > settled:
                break
            if record.stream_id.startswith(prefix):
                seen.append([record.stream_id, record.version, str(record.event_id), record.position])
            position = record.position
    except Exception as exc:
        log.write({"type": "error", "error": f"read_all: {_describe(exc)}"})
        return position, False
    finally:
        log.write({"type": "seen", "events": seen})
    return max(position, settled), True


def main(argv: list[str]) -> int:
    config = ClientConfig.load(Path(argv[0]))
    if config.role == "writer":
        run_writer(config)
    elif config.role == "projection":
        run_projection(config)
    else:
        raise SystemExit(f"unknown role {config.role!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
