"""``python -m es_core.subscriptions``: the operator's commands.

    python -m es_core.subscriptions status [NAME ...] [--json]
    python -m es_core.subscriptions reset NAME [--to POSITION]       # 0 (a rebuild) by default
    python -m es_core.subscriptions pause NAME | resume NAME
    python -m es_core.subscriptions skip NAME EVENT_ID --reason "why"
    python -m es_core.subscriptions parked NAME [--json]
    python -m es_core.subscriptions promote ALIAS NAME [--max-lag EVENTS]

``--store URL`` names the event store (default ``$ES_STORE_URL``, else the project's default
SQLite file); ``--checkpoints sqlite:///file.db`` names a separate SQLite file holding the
checkpoints (default: the store's own file or keyspace). Exit status 0 on success, 1 when the
command was refused (the error says why; nothing was written), 2 for a malformed command line.

A protected store (personal fields sealed, ``EventStore.protect``) needs no key-encryption key
here: these commands read positions, recorded times and checkpoints, never an event's fields
(the log is read ``as_stored``, sealed fields left sealed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import EventSourcingError, InvalidStoreUrlError
from ..stores import names_missing_file, open_store, sqlite_path
from ..stores.base import EventStore
from .checkpoints import Checkpoints
from .records import SubscriptionStatus


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if names_missing_file(args.store):
            raise InvalidStoreUrlError(f"no SQLite store at {sqlite_path(args.store)!r}")
        store = open_store(args.store)
    except EventSourcingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        checkpoints = _checkpoints(store, args.checkpoints)
        try:
            from .admin import SubscriptionAdmin

            return int(args.run(SubscriptionAdmin(store, checkpoints), args))
        finally:
            checkpoints.close()
    except EventSourcingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


def _checkpoints(store: EventStore, url: str | None) -> Checkpoints:
    from . import SQLiteCheckpoints, checkpoints_for

    if url is None:
        if store.scheme == "memory":
            raise InvalidStoreUrlError("a memory store keeps no checkpoints between runs; name a file or a keyspace")
        return checkpoints_for(store)
    if not url.startswith("sqlite:///"):
        raise InvalidStoreUrlError(f"--checkpoints takes a sqlite:/// URL, not {url!r}")
    return SQLiteCheckpoints(sqlite_path(url))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m es_core.subscriptions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", metavar="URL", help="the event store (default: $ES_STORE_URL or the default file)")
    parser.add_argument("--checkpoints", metavar="URL", help="a separate sqlite:/// file holding the checkpoints")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    status = sub.add_parser("status", help="position, head, lag and state of each subscription")
    status.add_argument("names", nargs="*", metavar="NAME")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.set_defaults(run=_status)

    reset = sub.add_parser("reset", help="move a stopped subscription to a position (0: rebuild)")
    reset.add_argument("name", metavar="NAME")
    reset.add_argument("--to", type=int, default=0, metavar="POSITION")
    reset.set_defaults(run=lambda admin, a: _done(admin.reset(a.name, a.to), f"{a.name}: reset to {a.to} "
                                                  "at its next start"))

    for verb, text in (("pause", "stop handing events to a subscription"), ("resume", "undo a pause or a stop")):
        command = sub.add_parser(verb, help=text)
        command.add_argument("name", metavar="NAME")
        command.set_defaults(run=lambda admin, a, verb=verb: _done(getattr(admin, verb)(a.name), f"{a.name}: {verb}d"))

    skip = sub.add_parser("skip", help="never hand one event to a subscription, with a recorded reason")
    skip.add_argument("name", metavar="NAME")
    skip.add_argument("event_id", metavar="EVENT_ID")
    skip.add_argument("--reason", required=True)
    skip.set_defaults(run=lambda admin, a: _done(admin.skip(a.name, a.event_id, a.reason),
                                                 f"{a.name}: event {a.event_id} will be skipped"))

    parked = sub.add_parser("parked", help="events a subscription's handler kept failing on")
    parked.add_argument("name", metavar="NAME")
    parked.add_argument("--json", action="store_true")
    parked.set_defaults(run=_parked)

    promote = sub.add_parser("promote", help="point an alias at a caught-up subscription (blue/green)")
    promote.add_argument("alias", metavar="ALIAS")
    promote.add_argument("name", metavar="NAME")
    promote.add_argument("--max-lag", type=int, default=0, metavar="EVENTS")
    promote.set_defaults(run=lambda admin, a: _done(admin.promote(a.alias, a.name, max_lag_events=a.max_lag),
                                                    f"{a.alias} -> {a.name}"))
    return parser


def _done(_result: object, message: str) -> int:
    print(message)
    return 0


def _status(admin: Any, args: argparse.Namespace) -> int:
    rows: list[SubscriptionStatus] = admin.status(args.names or None)
    if args.json:
        print(json.dumps({"subscriptions": [r.as_dict() for r in rows], "aliases": admin.checkpoints.aliases()}))
        return 0
    if not rows:
        print("no subscriptions")
        return 0
    header = ("name", "position", "head", "lag events", "lag s", "status", "running", "parked")
    table = [header] + [
        (r.name, str(r.position), str(r.head), str(r.lag_events), f"{r.lag_seconds:.1f}", r.status,
         "yes" if r.running else "no", str(r.parked))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        if r.last_error:
            print(f"{r.name}: {r.last_error}")
    return 0


def _parked(admin: Any, args: argparse.Namespace) -> int:
    events = admin.parked(args.name)
    if args.json:
        print(json.dumps([{"event_id": str(p.event_id), "position": p.position, "stream_id": p.stream_id,
                           "version": p.version, "event_type": p.event_type, "error": p.error,
                           "attempts": p.attempts} for p in events]))
        return 0
    for p in events:
        when = datetime.fromtimestamp(p.parked_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{p.event_id}  position {p.position}  {p.stream_id} v{p.version} {p.event_type}  "
              f"parked {when} after {p.attempts} attempts: {p.error}")
    if not events:
        print(f"{args.name}: nothing parked")
    return 0
