"""``python -m downloads``: simulate, what-if, explain, census, check.

    python -m downloads simulate --members 1000 --days 365 --seed 1 [--store URL] [--json]
    python -m downloads simulate --small --store memory:// --json
    python -m downloads whatif --store URL --rules data/rules/generous_title_limit.toml [--json]
    python -m downloads whatif --store URL --rules FILE --engine dask [--workers N | --scheduler tcp://host:port]
    python -m downloads explain --store URL --member m00042 [--request m00042-17] [--json]
    python -m downloads census --store URL [--json]
    python -m downloads check data/rules/default.toml data/catalogue.toml

A protected store (device names sealed, ``EventStore.protect``) is opened with the key-encryption
key in the environment variable ``ES_KEK`` (``key_id:<32 bytes in base64>``), or in the one
``--kek-env NAME`` names; the key itself never goes on the command line. With it set, ``simulate``
writes a protected store. A protected store without it is bad input.

Exit status: 0 done; 1 nothing to show (``explain`` of a member or request with no events, or
a request that was not denied); 2 bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from es_core import EventSourcingError, EventStore, SQLiteStore, open_store
from es_core.keys import is_variable_name
from es_core.stores import names_missing_file, sqlite_path

from ._files import read_toml
from .catalogue import DEFAULT_CATALOGUE_PATH, load_catalogue
from .census import decision_census
from .explain import explain_denial, timeline
from .protection import protect_from_environment
from .rules import DEFAULT_RULES_PATH, load_rules
from .simulator import DEFAULT_START, simulate
from .whatif import WhatIfReport, whatif

SIM_STORE = "sqlite:///data/local/sim.db"
SMALL = (100, 90)  # members, days: a size for CI and workshops in which every rule denies
EXIT_NOTHING, EXIT_BAD_INPUT = 1, 2
ENGINES = ("serial", "dask")


class UsageError(Exception):
    """Bad input the command line itself finds (a store that is missing or not empty)."""


class NothingFound(Exception):
    """Nothing to show: the command was fine, the store holds nothing about it."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (EventSourcingError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NothingFound as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_NOTHING


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m downloads",
        description="The downloads licensing domain: simulate members, replay them under other rules, explain.",
        epilog="Exit status: 0 done, 1 nothing to show, 2 bad input (nothing written).",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    rules_help = f"rule file (default: {_shown(DEFAULT_RULES_PATH)})"
    catalogue_help = f"catalogue file (default: {_shown(DEFAULT_CATALOGUE_PATH)})"

    sim = sub.add_parser("simulate", help="simulate members downloading over time, through the service, into a store")
    sim.add_argument("--members", type=int, default=1000, help="members to simulate (default: %(default)s)")
    sim.add_argument("--days", type=int, default=365, help="days of simulated time (default: %(default)s)")
    sim.add_argument("--seed", type=int, default=1, help="random seed; the same seed gives the same events "
                     "(default: %(default)s)")
    sim.add_argument("--small", action="store_true",
                     help=f"{SMALL[0]} members x {SMALL[1]} days, a size for CI and workshops in which every rule "
                     "denies (overrides --members and --days)")
    sim.add_argument("--store", help=f"store URL to write to (default: {SIM_STORE}?synchronous=normal)")
    sim.add_argument("--durable", action="store_true", help="with the default store: fsync every commit "
                     "(default: off, a crash may lose the last commits)")
    sim.add_argument("--fresh", action="store_true", help="delete the SQLite store file first if it exists "
                     "(default: refuse a store that holds events)")
    sim.add_argument("--rules", type=Path, default=DEFAULT_RULES_PATH, help=rules_help)
    sim.add_argument("--catalogue", type=Path, default=DEFAULT_CATALOGUE_PATH, help=catalogue_help)
    sim.add_argument("--start", type=_start, default=DEFAULT_START,
                     help=f"first simulated moment: a date (midnight UTC) or a date-time with a UTC offset "
                     f"(default: {DEFAULT_START:%Y-%m-%d})")
    sim.add_argument("--json", action="store_true", help="print the report as one JSON object (default: a table)")
    sim.add_argument("--quiet", action="store_true", help="no announcement and no progress line on stderr")
    _kek_option(sim)
    sim.set_defaults(run=_simulate)

    wi = sub.add_parser("whatif", help="replay a recorded store's requests under other rules and compare")
    wi.add_argument("--store", required=True, help="URL of the recorded store (read only)")
    wi.add_argument("--rules", type=Path, required=True, help="rule file to replay under")
    wi.add_argument("--catalogue", type=Path, default=DEFAULT_CATALOGUE_PATH, help=catalogue_help)
    wi.add_argument("--scratch", default="memory://", help="store URL to replay into (default: %(default)s)")
    wi.add_argument("--changes", type=int, default=20, help="changed outcomes to list (default: %(default)s)")
    wi.add_argument("--json", action="store_true", help="print the report as one JSON object (default: a table)")
    wi.add_argument("--engine", default="serial",
                    help="serial (one process) or dask (a Dask cluster) (default: %(default)s)")
    wi.add_argument("--workers", help="with --engine dask: start a local cluster of N worker processes "
                    "(default: one per core)")
    wi.add_argument("--scheduler", help="with --engine dask: use the running cluster at tcp://host:port "
                    "(default: none, a local cluster)")
    wi.add_argument("--splits", help="with --engine dask: splits of the store to replay as tasks "
                    "(default: 4 per worker thread)")
    _kek_option(wi)
    wi.set_defaults(run=_whatif)

    ex = sub.add_parser("explain", help="a member's timeline, or why a request was denied")
    ex.add_argument("--store", required=True, help="URL of the store to read")
    ex.add_argument("--member", required=True, help="member id, e.g. m00042")
    ex.add_argument("--request", help="explain this denied request; request ids are in the timeline (default: "
                    "print the timeline)")
    ex.add_argument("--aggregate", help="only the events of this licence, title or device (default: all)")
    ex.add_argument("--rules", type=Path, default=DEFAULT_RULES_PATH,
                    help="rule file to read a denial's causes with when the rule set that judged it is not one of "
                    f"the shipped files (default: {_shown(DEFAULT_RULES_PATH)})")
    ex.add_argument("--json", action="store_true", help="print JSON (default: text)")
    _kek_option(ex)
    ex.set_defaults(run=_explain)

    ce = sub.add_parser("census", help="decisions per rule set (name and content hash): shows a changed rule file")
    ce.add_argument("--store", required=True, help="URL of the store to read")
    ce.add_argument("--json", action="store_true", help="print the census as one JSON object (default: a table)")
    _kek_option(ce)
    ce.set_defaults(run=_census)

    check = sub.add_parser("check", help="validate rule and catalogue files; reports every bad file")
    check.add_argument("files", nargs="+", type=Path, help="rule files and catalogue files")
    check.set_defaults(run=_check)
    return parser


def _kek_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--kek-env", metavar="NAME", type=_variable_name,
        help="environment variable holding the key-encryption key of a protected store, as 'key_id:<32 bytes in "
        "base64>' (default: ES_KEK when it is set; the key itself is never an argument)",
    )


def _variable_name(text: str) -> str:
    """A variable name; anything else is refused without being repeated (it may be the key itself)."""
    if not is_variable_name(text):
        raise argparse.ArgumentTypeError("takes the name of an environment variable (letters, digits, '_'), not a key")
    return text


def _shown(path: Path) -> str:
    """A path as a person in the repository reads it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _start(text: str) -> datetime:
    """A plain date (midnight UTC) or a date-time with a UTC offset."""
    try:
        if "T" not in text and " " not in text:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (2026-01-01) or a date-time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: give a date (2026-01-01) or an offset (2026-01-01T08:00:00+00:00)"
        )
    return moment


# -- simulate ---------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    members, days = SMALL if args.small else (args.members, args.days)
    url = args.store or (SIM_STORE if args.durable else SIM_STORE + "?synchronous=normal")
    rules, catalogue = load_rules(args.rules), load_catalogue(args.catalogue)
    if args.fresh:
        _delete_sqlite(url)
    progress = None if args.quiet or not sys.stderr.isatty() else _progress_line("day")
    with open_store(url) as store:
        if store.head_position() > 0:
            raise UsageError(f"{url} already holds events; pass --fresh to start over, or another --store")
        protect_from_environment(store, args.kek_env)
        if not args.quiet:  # once the input is known to be good: a long run says what it is doing
            print(
                f"simulating {members:,} members x {days} days from {args.start:%Y-%m-%d} (seed {args.seed}, rules "
                f"{rules.label}, catalogue {catalogue.name or catalogue.source}) into {url}",
                file=sys.stderr,
            )
        report = simulate(
            store, members=members, days=days, seed=args.seed, rules=rules, catalogue=catalogue,
            start=args.start, progress=progress,
        )
    data = {"store": url, **report.as_dict()}
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    print(f"simulated {members} members x {days} days (seed {args.seed}) into {url}")
    print(f"  rules {rules.label}, catalogue {report.catalogue}, from {report.start:%Y-%m-%d}")
    _table(
        [
            ("commands", report.commands), ("events", report.events), ("grants", report.grants),
            ("denials", report.denials),
            *((f"  {rule}", n) for rule, n in report.denials_by_rule.items()),
            ("duplicates absorbed", report.duplicates_absorbed), ("titles withdrawn", report.titles_withdrawn),
            *((f"refused: {kind}", n) for kind, n in report.refused.items()),
            ("wall time", f"{report.wall_seconds:.1f} s"), ("events/s", f"{report.events_per_second:,.0f}"),
            ("commands/s", f"{report.commands_per_second:,.0f}"), ("peak RSS", f"{report.peak_rss_mb:.0f} MB"),
        ]
    )
    return 0


def _delete_sqlite(url: str) -> None:
    if urlsplit(url).scheme == "sqlite" and sqlite_path(url):
        SQLiteStore.remove_files(sqlite_path(url))


def _progress_line(unit: str) -> Callable[[int, int], None]:
    try:
        from tqdm import tqdm  # optional: only for a nicer bar
    except ImportError:
        tqdm = None
    if tqdm is not None:
        bar = tqdm(total=None, unit=unit, file=sys.stderr, leave=False)

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()

        return update

    def line(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{unit} {done}/{total} ({100 * done // max(total, 1)}%)", end=end, file=sys.stderr, flush=True)

    return line


# -- whatif -----------------------------------------------------------------------------


def _whatif(args: argparse.Namespace) -> int:
    dask = _engine(args)
    rules, catalogue = load_rules(args.rules), load_catalogue(args.catalogue)
    with _existing(args.store, args.kek_env) as store:
        if dask:
            report = _whatif_on_dask(args, store, rules, catalogue)
        else:
            with open_store(args.scratch) as scratch:
                report = whatif(store, rules, catalogue=catalogue, scratch=scratch, max_changes=max(args.changes, 0))
    if args.json:
        print(json.dumps(report.as_dict(), default=str))
        return 0
    print(f"what if the rules were {report.rules!r} ({args.rules})")
    recorded = ", ".join(f"{label} ({n:,} downloads and renewals)" for label, n in report.recorded_under.items())
    print(f"  recorded under {recorded or 'no rule set'}; replayed under {report.rules_label}")
    _table(
        [
            ("requests replayed", report.requests), ("downloads and renewals", report.download_requests),
            ("granted", f"{report.granted_before} -> {report.granted_after}"),
            ("denied", f"{report.denied_before} -> {report.denied_after}"),
            ("newly granted", report.newly_granted), ("newly denied", report.newly_denied),
            ("denied by another rule", report.rule_changed),
            *((f"not applicable: {cmd}", n) for cmd, n in report.not_applicable.items()),
            ("members affected", len(report.by_member)),
        ]
    )
    if report.denials_by_rule:
        print("denials by rule (before -> after):")
        _table([(f"  {rule}", f"{c['before']} -> {c['after']}") for rule, c in report.denials_by_rule.items()])
    for change in report.changes:
        print(
            f"  {change.at:%Y-%m-%d %H:%M} {change.member_id} {change.command} {change.request_id}: "
            f"{change.before}{_rule(change.rule_before)} -> {change.after}{_rule(change.rule_after)}"
        )
    if report.changes_truncated:
        print(f"  ... (first {len(report.changes)} changes listed; --changes N for more)")
    return 0


def _engine(args: argparse.Namespace) -> bool:
    """True for the Dask engine; bad engine options are bad input (one line, exit 2)."""
    if args.engine not in ENGINES:
        raise UsageError(f"unknown engine {args.engine!r}; known: {', '.join(ENGINES)}")
    dask_options = {"--workers": args.workers, "--scheduler": args.scheduler, "--splits": args.splits}
    if args.engine == "serial":
        given = [name for name, value in dask_options.items() if value is not None]
        if given:
            raise UsageError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --engine dask")
        return False
    if args.workers is not None and args.scheduler is not None:
        raise UsageError("give --workers or --scheduler, not both")
    args.workers = _count("--workers", args.workers)
    args.splits = _count("--splits", args.splits)
    if args.scratch != "memory://":
        raise UsageError("--scratch is for the serial engine; the dask engine replays each split into memory")
    return True


def _count(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{option} must be a whole number >= 1, not {text!r}")
    return int(text)


def _whatif_on_dask(args: argparse.Namespace, store: EventStore, rules: Any, catalogue: Any) -> WhatIfReport:
    from . import scaleout  # imports Dask: only for this engine

    progress = _progress_line("split") if sys.stderr.isatty() and not args.json else None
    with scaleout.connect(workers=args.workers, scheduler=args.scheduler) as client:
        if sys.stderr.isatty():
            print(f"dask: {len(client.nthreads())} workers, dashboard {client.dashboard_link}", file=sys.stderr)
        return scaleout.whatif(
            store, rules, client=client, catalogue=catalogue, max_changes=max(args.changes, 0),
            splits=args.splits, progress=progress, kek_variable=args.kek_env,
        )


def _rule(rule: str | None) -> str:
    return f" ({rule})" if rule else ""


# -- explain ----------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    with _existing(args.store, args.kek_env) as store:
        if args.request:
            try:
                explanation = explain_denial(store, args.member, args.request, rules=load_rules(args.rules))
            except LookupError:
                held = [e for e in timeline(store, args.member) if e.request_id == args.request]
                what = "was not denied" if held else "has no events"
                raise NothingFound(f"request {args.request} of member {args.member} {what} in {args.store}") from None
            print(json.dumps(explanation.as_dict(), default=str) if args.json else explanation.text)
            return 0
        entries = timeline(store, args.member, aggregate_id=args.aggregate)
    if not entries:
        only = f" for {args.aggregate}" if args.aggregate else ""
        raise NothingFound(f"member {args.member} has no events{only} in {args.store}")
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], default=str))
    else:
        width = max(len(e.request_id or "-") for e in entries)
        for e in entries:
            print(f"v{e.version:<5} {e.request_id or '-':<{width}}  {e.summary}")
    return 0


def _existing(url: str, kek_variable: str | None) -> EventStore:
    """Open a store that must already hold events (a typo in a path would otherwise create one),
    protected with the key-encryption key from the environment when it needs one."""
    if names_missing_file(url):
        raise UsageError(f"no store at {url}")
    store = open_store(url)
    try:
        protect_from_environment(store, kek_variable)
    except BaseException:
        store.close()
        raise
    return store


# -- census -----------------------------------------------------------------------------


def _census(args: argparse.Namespace) -> int:
    with _existing(args.store, args.kek_env) as store:
        census = decision_census(store)
    if args.json:
        print(json.dumps(census.as_dict(), default=str))
        return 0
    if not census.rule_sets:
        raise NothingFound(f"{args.store} holds no decisions")
    print("decisions by the rule set that judged them:")
    _table([(f"  {row.label}", f"{row.grants:,} granted, {row.denials:,} denied") for row in census.rule_sets])
    for name, digests in census.changed().items():
        print(f"rule set {name!r} changed between runs: judged with {len(digests)} contents ({', '.join(digests)})")
    return 0


# -- check ------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    """A file with ``plans``, ``limits`` or ``extends`` is a rule file; anything else a catalogue.
    Every file is checked; each bad one gets its own error line."""
    bad = 0
    for path in args.files:
        try:
            raw = read_toml(path)
            loaded: Any = load_rules(path) if {"plans", "limits", "extends"} & set(raw) else load_catalogue(path)
        except EventSourcingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            bad += 1
            continue
        print(f"{path}: ok ({loaded!r})")
    return EXIT_BAD_INPUT if bad else 0


def _table(rows: list[tuple[str, Any]]) -> None:
    for label, value in rows:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"  {label:<28} {shown}")
