"""Command line: ``python -m benchmarks run | scaling | scaleout | cassandra | personal | table``.

With ``--json`` exactly one JSON object goes to stdout; progress always goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import personal as personal_suite
from . import run as run_suite
from . import scaling as scaling_suite
from .tables import RESULTS_FILE, markdown_table, scaling_markdown

QUICK_RUN = {"members": 20, "events": 20, "snapshot_every": 5, "rounds": 2, "append_rounds": 2, "read_rounds": 1,
             "load_sample": 10, "append_members": 2, "append_commands": 10}
QUICK_PERSONAL = {"members": 20, "events": 20, "snapshot_every": 5, "rounds": 2, "append_rounds": 2,
                  "load_sample": 10, "append_members": 2, "append_commands": 10}
QUICK_SCALING = {"sizes": (20, 60), "aggregates": 2, "snapshot_every": 5, "intervals": (5,), "sim_members": (5,),
                 "sim_days": 2, "rounds": 1, "append_members": 2, "append_commands": 10}


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers")
    return values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default="sqlite", metavar="URL",
                   help="sqlite (temporary files, default), sqlite:///dir/name.db[?synchronous=normal], memory://, "
                        "or cassandra://host[:port]/keyspace")
    p.add_argument("--snapshot-every", type=int, metavar="K", help="snapshot interval in events (default 30)")
    p.add_argument("--rounds", type=int, metavar="R", help="rounds per measurement; figures are medians")
    p.add_argument("--seed", type=int, help="workload seed")
    p.add_argument("--no-peer", action="store_true", help="skip the eventsourcing library even if installed")
    p.add_argument("--workdir", type=Path, help="where the temporary databases go (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the databases after the run")
    p.add_argument("--quick", action="store_true", help="a tiny smoke-test size (seconds, not minutes)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--save", action="store_true", help="also write the results into benchmarks/results/latest.json")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the suite: es_core vs the raw floor vs the peer library")
    _common(run)
    run.add_argument("--workload", default="downloads", choices=["downloads"])
    run.add_argument("--members", type=int, metavar="N", help="members (aggregates) to seed (default 1000)")
    run.add_argument("--events-per-member", type=int, metavar="E", dest="events", help="events each (default 100)")
    run.add_argument("--load-sample", type=int, metavar="S", help="accounts loaded per round (default 300)")
    run.add_argument("--append-rounds", type=int, metavar="R", help="rounds of appends (default 9)")

    scaling = sub.add_parser("scaling", help="load latency as history grows; snapshot cost; simulator")
    _common(scaling)
    scaling.add_argument("--sizes", type=_ints, metavar="LIST", help="events per aggregate (default 100,1000,10000)")
    scaling.add_argument("--aggregates", type=int, metavar="A", help="aggregates per size (default 5)")
    scaling.add_argument("--intervals", type=_ints, metavar="LIST", help="snapshot intervals for the append cost")
    scaling.add_argument("--sim-members", type=_ints, metavar="LIST", help="simulator sizes (default 1000,10000)")
    scaling.add_argument("--sim-days", type=int, metavar="D", help="simulated days per simulator run (default 30)")

    out = sub.add_parser("scaleout", help="what-if on a Dask cluster of 1 and 2 workers vs one process")
    out.add_argument("--members", type=int, default=10_000, help="members of the recorded history (default 10000)")
    out.add_argument("--days", type=int, default=365, help="days of the recorded history (default 365)")
    out.add_argument("--seed", type=int, default=7, help="seed of the recorded history (default 7)")
    out.add_argument("--rules", type=Path, help="rule file to replay under (default: generous_title_limit.toml)")
    out.add_argument("--workers", type=_ints, default=(1, 2), metavar="LIST", help="cluster sizes (default 1,2)")
    out.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians (default 3)")
    out.add_argument("--cassandra", metavar="URL", help="also on Cassandra: cassandra://host:port/keyspace_prefix"
                     "?replication_factor=1 (the history goes in <prefix>_<members>x<days>_s<seed>)")
    out.add_argument("--data", type=Path, default=Path("data/local"), help="where the histories are kept")
    out.add_argument("--quick", action="store_true", help="200 members x 20 days: a smoke size")
    out.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    out.add_argument("--save", action="store_true", help="also write the results into benchmarks/results/latest.json")

    cass = sub.add_parser("cassandra", help="the Cassandra store against the raw driver: costs, appends/s, loads")
    cass.add_argument("--url", help="the one-node store URL (default: $ES_CASSANDRA_HOST, keyspace es_bench, RF 1)")
    cass.add_argument("--cluster", nargs="?", metavar="HOSTS",
                      const=os.environ.get("ES_RELIABILITY_CLUSTER_ADDRESSES", "127.0.0.1,127.0.0.2,127.0.0.3"),
                      help="also a running 3-node cluster (python -m reliability cluster start), RF 3, QUORUM; "
                           "HOSTS default: $ES_RELIABILITY_CLUSTER_ADDRESSES")
    cass.add_argument("--cluster-only", action="store_true", help="skip the one-node target")
    cass.add_argument("--rounds", type=int, metavar="R", help="rounds per throughput measurement (default 3)")
    cass.add_argument("--quick", action="store_true", help="a tiny smoke-test size")
    cass.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    cass.add_argument("--save", action="store_true", help="also write the results into benchmarks/results/latest.json")

    personal = sub.add_parser("personal", help="the cost of sealing personal fields: protected vs unprotected")
    _common(personal)
    personal.add_argument("--members", type=int, metavar="N", help="members to seed (default 400)")
    personal.add_argument("--events-per-member", type=int, metavar="E", dest="events", help="events each (default 100)")
    personal.add_argument("--load-sample", type=int, metavar="S", help="accounts loaded per round (default 200)")
    personal.add_argument("--append-rounds", type=int, metavar="R", help="rounds of appends (default 5)")

    table = sub.add_parser("table", help="the latest saved figures as a Markdown table (for the README)")
    table.add_argument("--results", type=Path, default=RESULTS_FILE)
    return top


def _config(args: argparse.Namespace, cls: type[Any], quick: dict[str, Any], names: tuple[str, ...]) -> Any:
    values: dict[str, Any] = dict(quick) if args.quick else {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    values.update(store=args.store, workdir=args.workdir, keep=args.keep)
    if cls is not personal_suite.PersonalConfig:  # the personal suite measures es_core against itself
        values["peer"] = not args.no_peer
    return cls(**values)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def save(result: dict[str, Any], path: Path = RESULTS_FILE) -> None:
    """Keep the latest result of each suite in one small JSON file."""
    saved: dict[str, Any] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError:
            saved = {}
    saved[result["suite"]] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=1, sort_keys=False) + "\n")


def human(result: dict[str, Any]) -> str:
    """A short plain-text summary of a result."""
    lines = [f"{result['suite']} on {result['store']} — {result['machine'].get('cpu')}, "
             f"{result['machine'].get('cores')} cores, {result['machine'].get('date')}"]
    if result["suite"] == "run" and "results" in result:
        lines.append(markdown_table({"run": result}))
    for target in result.get("targets", []):
        mark = {True: "met", False: "NOT met", None: "n/a"}[target["met"]]
        lines.append(f"  {target['target']}: {target['value']} ({target['bound']}) {mark}")
    if result["suite"] == "scaleout":
        for name, figures in result["stores"].items():
            lines.append(f"  {name}: {figures['events']:,} events; seconds {figures['seconds']}; "
                         f"speedup {figures['speedup']}; {figures['events_per_second_per_worker']:,} events/s per "
                         f"worker: {figures['workers_for_100m_events_in_10_min']} workers for 100M in 10 min")
    if result["suite"] == "scaling":
        for row in result.get("load", []):
            lines.append(f"  load {row['implementation']:8s} {row['events_per_aggregate']:>6} events "
                         f"{'snap ' if row['snapshots'] else 'full '} p50 {row['p50_ms']} ms p99 {row['p99_ms']} ms")
    if "cassandra" in result:
        lines.append(f"  cassandra: {result['cassandra']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "table":
        saved = json.loads(args.results.read_text())
        print(markdown_table(saved) + "\n\n" + scaling_markdown(saved))
        return 0
    if args.command == "scaleout":
        from . import scaleout  # needs the dask extra

        result = scaleout.run(scaleout.ScaleoutConfig(
            members=200 if args.quick else args.members, days=20 if args.quick else args.days, seed=args.seed,
            rules=args.rules or scaleout.RULES, workers=args.workers, rounds=args.rounds, cassandra=args.cassandra,
            data=args.data,
        ), _log)
        return _emit(args, result, human)
    if args.command == "cassandra":
        return _cassandra(args)
    if args.command == "personal":
        config = _config(args, personal_suite.PersonalConfig, QUICK_PERSONAL,
                         ("members", "events", "snapshot_every", "rounds", "append_rounds", "seed", "load_sample"))
        result = personal_suite.run_personal(config, _log)
    elif args.command == "run":
        config = _config(args, run_suite.RunConfig, QUICK_RUN,
                         ("members", "events", "snapshot_every", "rounds", "append_rounds", "seed", "load_sample"))
        result = run_suite.run(config, _log)
    else:
        config = _config(args, scaling_suite.ScalingConfig, QUICK_SCALING,
                         ("sizes", "aggregates", "snapshot_every", "intervals", "sim_members", "sim_days", "rounds",
                          "seed"))
        result = scaling_suite.scaling(config, _log)
    return _emit(args, result, personal_suite.human if args.command == "personal" else human)


def _emit(args: argparse.Namespace, result: dict[str, Any], summary: Callable[[dict[str, Any]], str]) -> int:
    """Save (``--save``) and print the result: one JSON object (``--json``) or a summary."""
    if args.save:
        save(result)
        _log(f"saved to {RESULTS_FILE}")
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(summary(result))
    return 0


def _cassandra(args: argparse.Namespace) -> int:
    import dataclasses

    from . import cassandra

    sizes = cassandra.QUICK if args.quick else cassandra.Sizes()
    if args.rounds:
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    targets = [] if args.cluster_only else [("one node", args.url or cassandra.node_url())]
    if args.cluster:
        targets.append(("3-node cluster", cassandra.cluster_url(args.cluster)))
    if not targets:
        raise SystemExit("--cluster-only needs --cluster")
    return _emit(args, cassandra.run(targets, sizes, _log), cassandra.human)


if __name__ == "__main__":
    sys.exit(main())
