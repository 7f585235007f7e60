"""The process the crash scenario kills: it appends batches to a SQLite store until SIGKILL.

It logs to an append-only file, one ``write()`` per line so a kill cannot tear a line:

* ``intent`` before each append (batch id, stream, size, expected version): what *may* be stored;
* ``ack`` after the append returned (versions, whether it was a retry): what *must* be stored;
* ``snap`` after a snapshot was saved.

Every event carries its batch id, the batch size and its index, and an id derived from them, so
the checker can tell a whole batch from a partial one and a real event from an invented one.
Run by ``reliability.crash``: ``python -m reliability.crash_writer --db ... --log ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

from es_core import ConcurrencyError, Expect, NewEvent, Snapshot, SQLiteStore, event_id_from
from es_core.events import ExpectedVersion

EVENT_TYPE = "CrashProbe"
MAX_SECONDS = 30.0  # a writer nobody kills stops by itself
MAX_OPERATIONS = 200_000


def batch_events(batch: str, size: int, life: int, pad: int) -> list[NewEvent]:
    return [
        NewEvent(
            event_type=EVENT_TYPE,
            data={"batch": batch, "size": size, "index": i, "life": life, "pad": "x" * pad},
            event_id=event_id_from("crash", batch, i),
        )
        for i in range(size)
    ]


def encode_expected(expected: ExpectedVersion) -> int | str:
    return expected.value if isinstance(expected, Expect) else expected


def decode_expected(value: int | str) -> ExpectedVersion:
    return Expect(value) if isinstance(value, str) else value


class Writer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.store = SQLiteStore(args.db, synchronous=args.synchronous)
        self.log = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.rng = random.Random(args.seed)
        self.life = args.life
        self.streams = [f"crash-{k}" for k in range(args.streams)]
        self.versions = {s: self.store.stream_version(s) for s in self.streams}
        self.last_ack: dict[str, Any] | None = None

    def emit(self, record: dict[str, Any]) -> None:
        os.write(self.log, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def append(self, intent: dict[str, Any], *, retry: bool = False) -> None:
        """Append the batch the intent describes; log the ack only once the append returned."""
        events = batch_events(intent["batch"], intent["size"], intent["life"], intent["pad"])
        if not retry:
            self.emit({"op": "intent", **intent})
        try:
            result = self.store.append(intent["stream"], events, decode_expected(intent["expected"]))
        except ConcurrencyError as exc:  # only a resent batch can meet one: report, carry on
            self.emit({"op": "conflict", "batch": intent["batch"], "actual": exc.actual})
            self.versions[intent["stream"]] = exc.actual
            return
        self.versions[intent["stream"]] = max(self.versions[intent["stream"]], result.last_version)
        ack = {
            "op": "ack",
            "batch": intent["batch"],
            "stream": intent["stream"],
            "first": result.first_version,
            "last": result.last_version,
            "duplicate": result.duplicate,
            "retry": retry,
        }
        self.emit(ack)
        self.last_ack = intent

    def new_intent(self, seq: int) -> dict[str, Any]:
        stream = self.rng.choice(self.streams)
        version = self.versions[stream]
        roll = self.rng.random()
        expected: ExpectedVersion = version
        if roll < 0.1:
            expected = Expect.ANY
        elif roll < 0.15 and version == 0:
            expected = Expect.NO_STREAM
        return {
            "batch": f"L{self.life}-B{seq}",
            "stream": stream,
            "size": self.rng.randint(1, 5),
            "expected": encode_expected(expected),
            "life": self.life,
            "pad": self.rng.choice((0, 0, 16, 200, 1200)),
        }

    def snapshot(self) -> None:
        stream = self.rng.choice(self.streams)
        version = self.versions[stream]
        if version < 1:
            return
        state = json.dumps({"version": version, "pad": "s" * self.rng.randint(0, 3000)}).encode()
        self.store.save_snapshot(
            Snapshot(
                stream_id=stream,
                version=version,
                state_type="CrashProbeState",
                state_schema_version=1,
                state=state,
                taken_at=self.store.clock(),
            )
        )
        self.store.prune_snapshots(stream, keep=2)
        self.emit({"op": "snap", "stream": stream, "version": version})

    def run(self, resend: dict[str, Any] | None) -> None:
        if resend is not None:  # the batch in flight when the last writer died, sent again as a client would
            self.append(resend, retry=True)
        self.emit({"op": "ready", "life": self.life})
        deadline = time.monotonic() + MAX_SECONDS
        for seq in range(MAX_OPERATIONS):
            if time.monotonic() > deadline:
                break
            roll = self.rng.random()
            if roll < 0.05 and self.last_ack is not None:
                self.append(self.last_ack, retry=True)  # a client retry of an acknowledged append
            elif roll < 0.12:
                self.snapshot()
            else:
                self.append(self.new_intent(seq))
        self.emit({"op": "done", "life": self.life})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m reliability.crash_writer")
    parser.add_argument("--db", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--seed", required=True)
    parser.add_argument("--life", type=int, required=True)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--synchronous", choices=SQLiteStore.SYNCHRONOUS, default="full")
    parser.add_argument("--resend", help="JSON intent of a batch to send again first")
    args = parser.parse_args()
    Writer(args).run(json.loads(args.resend) if args.resend else None)


if __name__ == "__main__":
    main()
