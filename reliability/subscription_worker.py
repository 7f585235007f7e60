"""Child processes of the subscription scenarios (``reliability.subscriptions``).

    python -m reliability.subscription_worker write --db FILE --seed S --stop FILE
    python -m reliability.subscription_worker project --db FILE --name NAME --page-size N

``write`` appends batches of 1-3 events (each with an ``amount``) to 16 streams until the stop
file appears. ``project`` runs the subscription ``NAME`` live into a read model in the store's
own file (``rel_effects``: one row per event with how often its effect was applied, and which
copy applied it; ``rel_totals``: the sum of amounts per stream) and prints ``ready`` once it
has started; it runs until it is killed.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from es_core import NewEvent, SQLiteStore
from es_core.subscriptions import Delivery, SQLiteCheckpoints, Subscription

MODEL = """
CREATE TABLE IF NOT EXISTS rel_effects (
    stream_id TEXT NOT NULL, version INTEGER NOT NULL, position INTEGER NOT NULL, n INTEGER NOT NULL,
    owner TEXT NOT NULL, PRIMARY KEY (stream_id, version)
);
CREATE TABLE IF NOT EXISTS rel_totals (stream_id TEXT PRIMARY KEY, total INTEGER NOT NULL);
"""
STREAMS = 16


def create_model(db: sqlite3.Connection) -> None:
    db.executescript(MODEL)


def model_handler(owner: str) -> Any:
    """The read model's handler: both tables change in the page's transaction."""

    def handle(d: Delivery) -> None:
        r = d.record
        d.tx.execute(
            "INSERT INTO rel_effects VALUES (?, ?, ?, 1, ?)"
            " ON CONFLICT (stream_id, version) DO UPDATE SET n = n + 1, owner = excluded.owner",
            (r.stream_id, r.version, r.position, owner),
        )
        d.tx.execute(
            "INSERT INTO rel_totals VALUES (?, ?) ON CONFLICT (stream_id) DO UPDATE SET total = total + excluded.total",
            (r.stream_id, int(r.data.get("amount", 0))),
        )

    return handle


def reset_model(tx: sqlite3.Connection, position: int) -> None:
    tx.execute("DELETE FROM rel_effects")
    tx.execute("DELETE FROM rel_totals")


def open_projection(db: Path, name: str, page_size: int) -> tuple[SQLiteStore, Subscription]:
    store = SQLiteStore(db)
    checkpoints = SQLiteCheckpoints.beside(store)
    create_model(checkpoints.db)
    subscription = Subscription(
        store, checkpoints, name, lambda d: None, page_size=page_size, poll=(0.001, 0.01), lease_seconds=5.0,
        on_reset=reset_model,
    )
    subscription.handler = model_handler(subscription.owner)
    return store, subscription


def _project(args: argparse.Namespace) -> int:
    _store, subscription = open_projection(Path(args.db), args.name, args.page_size)
    print("ready", flush=True)
    subscription.run()  # until SIGKILL
    return 0


def _write(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    store = SQLiteStore(args.db)
    stop = Path(args.stop)
    appended = 0
    print("ready", flush=True)
    while not stop.exists():
        stream = f"acct-{rng.randrange(STREAMS)}"
        size = rng.randint(1, 3)
        batch = [NewEvent(event_type="Credited", data={"amount": rng.randint(1, 100)}) for _ in range(size)]
        store.append(stream, batch)
        appended += len(batch)
        time.sleep(rng.uniform(0.0, 0.004))
    print(appended, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.subscription_worker")
    sub = parser.add_subparsers(required=True)
    write = sub.add_parser("write")
    write.add_argument("--db", required=True)
    write.add_argument("--seed", required=True)
    write.add_argument("--stop", required=True)
    write.set_defaults(run=_write)
    project = sub.add_parser("project")
    project.add_argument("--db", required=True)
    project.add_argument("--name", required=True)
    project.add_argument("--page-size", type=int, default=50)
    project.set_defaults(run=_project)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
