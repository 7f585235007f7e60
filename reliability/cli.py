"""``python -m reliability run``: run the scenarios, print the table, exit non-zero on any loss,
duplicate, violation or error.

    python -m reliability run                                   # the SQLite scenarios (make reliability)
    python -m reliability run --scenarios crash --kills 300 --seed 11
    python -m reliability run --scenarios races --store-url 'cassandra://127.0.0.1:9042/es_rel?replication_factor=1'
    python -m reliability run --scenarios cassandra-failure     # opt-in: a 3-node cluster (see docs/reliability.md)
    python -m reliability run --scenarios checked --size large  # every history-checked cluster scenario
    python -m reliability run --json
    python -m reliability cluster start|status|stop             # the 3-node cluster, by hand

Every option has an environment variable (``make reliability`` passes ``--size``):
``ES_RELIABILITY_SCENARIOS``, ``ES_RELIABILITY_SEED``, ``ES_RELIABILITY_KILLS``,
``ES_RELIABILITY_STORE_URL``, ``ES_RELIABILITY_SIZE`` and ``ES_RELIABILITY_CLUSTER=1`` (adds the
cluster scenarios: the seven history-checked ones, then ``cassandra-failure``).
All cluster scenarios of a run share one cluster, started once (or, with ``--running-cluster``,
the one ``python -m reliability cluster start`` left running).
Races, subscription-poison and forgetting run on Cassandra too when ``--store-url`` names one, or
when a node answers on ``ES_CASSANDRA_HOST:ES_CASSANDRA_PORT`` (default 127.0.0.1:9042) and the
backend is installed; otherwise that row says why it was skipped, except forgetting's, which then
runs on the cluster when the run starts one. Forgetting uses a keyspace of its own
(``es_reliability_forgetting``, on the same nodes), dropped first.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .cluster import DEFAULT_HOME, Cluster, addresses_of, cluster_addresses, cluster_url, running_cluster, start_all
from .cluster_scenarios import BY_NAME, SIZES
from .report import ScenarioResult, as_json, format_table, run_passed

CHECKED = tuple(BY_NAME)  # history-checked, on the cluster
DEFAULT = ("crash", "races", "idempotency", "bad-input", "fallback", "subscriptions", "forgetting")
SCENARIOS = (*DEFAULT, *CHECKED, "cassandra-failure")
ON_CLUSTER = {*CHECKED, "cassandra-failure"}
ALIASES = {"checked": CHECKED}
RACE_KEYSPACE = "es_reliability"
FORGETTING_KEYSPACE = "es_reliability_forgetting"  # dropped by each run: never a keyspace in use
FORGETTING_ON_CLUSTER = "forgetting@cluster"  # the Cassandra row of forgetting, when no node answered
FORGETTING_SIZES = {  # small: CI's; large: make reliability's
    "small": {"members": 8, "victims": 2, "writers": 3, "commands": 60},
    "large": {"members": 16, "victims": 4, "writers": 4, "commands": 200},
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.run is _cluster_command:
        return _cluster_command(args)
    try:
        chosen = _scenarios(args.scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    return int(args.run(args, chosen))


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m reliability", description="Reliability scenarios for the store.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run scenarios and print the table")
    run.add_argument(
        "--scenarios",
        default=env("ES_RELIABILITY_SCENARIOS", ""),
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: {','.join(DEFAULT)})",
    )
    run.add_argument("--seed", type=int, default=int(env("ES_RELIABILITY_SEED", "7")))
    run.add_argument(
        "--kills",
        type=int,
        default=int(env("ES_RELIABILITY_KILLS", "100")),
        help="SIGKILLs in the crash scenario (default 100)",
    )
    run.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=env("ES_RELIABILITY_SIZE", "small"),
        help="size of the history-checked cluster scenarios and of forgetting (default small; make reliability: large)",
    )
    run.add_argument(
        "--running-cluster",
        action="store_true",
        help="use the cluster `python -m reliability cluster start` left running (and leave it running)",
    )
    run.add_argument("--processes", type=int, default=8, help="racing processes (default 8)")
    run.add_argument("--commands", type=int, default=40, help="commands per racing process (default 40)")
    run.add_argument(
        "--store-url",
        default=env("ES_RELIABILITY_STORE_URL", ""),
        help="a Cassandra store URL for the races (default: a node on 127.0.0.1:9042 if one answers)",
    )
    run.add_argument(
        "--cluster-home",
        default=env("ES_RELIABILITY_CLUSTER_HOME", ""),
        help="scratch directory of the 3-node cluster (default <repo>/.cassandra/reliability)",
    )
    run.add_argument("--workdir", help="where the scenarios keep their files (default: a temporary directory)")
    run.add_argument("--keep", action="store_true", help="keep the working files")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    run.set_defaults(run=_run)
    cluster = sub.add_parser("cluster", help="start, inspect or stop the 3-node cluster by hand")
    cluster.add_argument("action", choices=("start", "status", "stop"))
    cluster.add_argument("--cluster-home", default=env("ES_RELIABILITY_CLUSTER_HOME", ""))
    cluster.set_defaults(run=_cluster_command)
    return parser


def _scenarios(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()] if text else list(DEFAULT)
    if not text and os.environ.get("ES_RELIABILITY_CLUSTER") == "1":
        chosen += CHECKED
        chosen.append("cassandra-failure")
    chosen = [n for name in chosen for n in ALIASES.get(name, (name,))]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)} (or checked)")
    return chosen


def _run(args: argparse.Namespace, chosen: list[str]) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="es-reliability-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started, clock = datetime.now(UTC), time.perf_counter()
    results: list[ScenarioResult] = []
    progress = _progress  # stderr, so stdout keeps only the table or the JSON
    extra: dict[str, object] = {}

    def run_all(names: list[str], cluster: Cluster | None = None) -> None:
        for name in names:
            for runner in _runners(name, args, workdir, cluster):
                if progress:
                    progress(f"running {name} ...")
                results.append(runner())
                if progress:
                    r = results[-1]
                    progress(f"  {r.scenario} ({r.store}): {r.status} in {r.seconds:.1f}s")

    # the node-failure scenario goes last: its final read stops two of the three nodes
    on_cluster = sorted((n for n in chosen if n in ON_CLUSTER), key=lambda n: n == "cassandra-failure")
    # forgetting's Cassandra row, when no node answers now, on the cluster first (before any fault)
    args.forgetting_on_cluster = (
        bool(on_cluster) and "forgetting" in chosen and not cassandra_race_url(args.store_url)[0]
    )
    if args.forgetting_on_cluster:
        on_cluster.insert(0, FORGETTING_ON_CLUSTER)
    try:
        run_all([n for n in chosen if n not in ON_CLUSTER])
        if on_cluster:
            extra["cluster"] = _on_cluster(on_cluster, args, run_all, results, progress)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.perf_counter() - clock
    header = (
        f"reliability run {started:%Y-%m-%d %H:%M} UTC, seed {args.seed}, {wall:.0f} s wall; "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    if args.json:
        print(as_json(results, started=started.isoformat(), seed=args.seed, wall_seconds=round(wall, 1), **extra))
    else:
        print(format_table(results, header=header))
    return 0 if run_passed(results) else 1


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _on_cluster(
    names: list[str],
    args: argparse.Namespace,
    run_all: Callable[[list[str], Cluster], None],
    results: list[ScenarioResult],
    progress: Callable[[str], None] | None,
) -> dict[str, object]:
    """Run ``names`` on one cluster, started once for all of them; a cluster that cannot start
    makes each of them an errored row. Returns the cluster's start figures."""
    home = Path(args.cluster_home) if args.cluster_home else None
    if progress:
        progress("starting the 3-node cluster ..." if not args.running_cluster else "using the running cluster")
    before = len(results)
    try:
        if args.running_cluster:
            cluster = Cluster(home or DEFAULT_HOME, addresses_of(home or DEFAULT_HOME))
            run_all(names, cluster)
            return {"addresses": cluster.addresses, "started_by": "python -m reliability cluster start"}
        with running_cluster(home, keep=args.keep) as cluster:
            if progress:
                progress(f"  cluster up in {cluster.figures['cluster_ready_seconds']}s")
            run_all(names, cluster)
            return cluster.figures
    except Exception as exc:  # the cluster did not start (or stop): every scenario not run says why
        done = {r.scenario for r in results[before:]}
        for name in names:
            row = "forgetting" if name == FORGETTING_ON_CLUSTER else name
            if row not in done:
                results.append(ScenarioResult(row, "cassandra", error=f"cluster: {type(exc).__name__}: {exc}"))
        return {"error": str(exc)}


def _cluster_command(args: argparse.Namespace) -> int:
    home = Path(args.cluster_home) if args.cluster_home else DEFAULT_HOME
    cluster = Cluster(home, cluster_addresses() if args.action == "start" else addresses_of(home))
    if args.action == "start":
        figures = start_all(cluster)
        print(f"cluster {','.join(cluster.addresses)} up in {figures['cluster_ready_seconds']}s (home {home})")
        return 0
    if args.action == "stop":
        for address in cluster.addresses:
            cluster.stop(address)
        print(f"cluster {','.join(cluster.addresses)} stopped")
        return 0
    done = cluster.nodetool(cluster.addresses[0], "status", timeout=60)
    print(done.stdout or done.stderr)
    return done.returncode


def _runners(
    name: str, args: argparse.Namespace, workdir: Path, cluster: Cluster | None = None
) -> list[Callable[[], ScenarioResult]]:
    # imported here so that one scenario's missing dependency cannot stop the others
    if name == "crash":
        from .crash import run_crash

        return [lambda: run_crash(workdir / "crash", seed=args.seed, kills=args.kills)]
    if name == "races":
        from .races import run_races, skipped_races, sqlite_url

        runs: list[Callable[[], ScenarioResult]] = [
            lambda: run_races(
                sqlite_url(workdir / "races"), seed=args.seed, processes=args.processes, commands=args.commands
            )
        ]
        url, why = cassandra_race_url(args.store_url)
        if url:
            runs.append(
                lambda: run_races(
                    url, seed=args.seed, processes=args.processes, commands=args.commands, store_label="cassandra"
                )
            )
        else:
            runs.append(lambda: skipped_races("cassandra", why))
        return runs
    if name == "idempotency":
        from .idempotency import run_idempotency

        return [lambda: run_idempotency(workdir / "idempotency", seed=args.seed)]
    if name == "bad-input":
        from .corpus import run_bad_input

        return [lambda: run_bad_input(workdir / "bad-input")]
    if name == "fallback":
        from .outage import run_fallback

        return [lambda: run_fallback(workdir / "fallback", seed=args.seed)]
    if name in ("forgetting", FORGETTING_ON_CLUSTER):
        return _forgetting_runners(name, args, workdir, cluster)
    if name == "subscriptions":
        from .subscriptions import run_subscription_copies, run_subscription_crash, run_subscription_poison

        where = workdir / "subscriptions"
        rows: list[Callable[[], ScenarioResult]] = [
            lambda: run_subscription_crash(where, seed=args.seed, kills=args.kills),
            lambda: run_subscription_copies(where, seed=args.seed, rounds=max(3, args.kills // 10)),
            lambda: run_subscription_poison(where, seed=args.seed, store_kind="sqlite"),
            lambda: run_subscription_poison(where, seed=args.seed, store_kind="memory"),
        ]
        url, why = cassandra_race_url(args.store_url)
        if url:
            rows.append(lambda: run_subscription_poison(where, seed=args.seed, store_kind="cassandra", store_url=url))
        else:
            rows.append(lambda: ScenarioResult("subscription-poison", "cassandra", skipped=why))
        return rows
    assert cluster is not None, name
    if name == "cassandra-failure":
        from .node_failure import run_node_failure

        return [lambda: run_node_failure(workdir / "node-failure", seed=args.seed, cluster=cluster)]
    if name in CHECKED:
        from .cluster_scenarios import run_checked

        scenario = BY_NAME[name]
        return [lambda: run_checked(scenario, cluster, workdir=workdir / "checked", seed=args.seed, size=args.size)]
    raise AssertionError(name)


def _forgetting_runners(
    name: str, args: argparse.Namespace, workdir: Path, cluster: Cluster | None
) -> list[Callable[[], ScenarioResult]]:
    """SQLite's row, and Cassandra's: on the node that answers, on the cluster (``name`` is then
    ``FORGETTING_ON_CLUSTER``, run in the cluster's turn), or skipped saying why."""
    from .forgetting import run_forgetting

    sized = FORGETTING_SIZES[args.size]
    if name == FORGETTING_ON_CLUSTER:
        assert cluster is not None
        url = cluster_url(cluster, FORGETTING_KEYSPACE, connect_timeout=15)
        return [lambda: run_forgetting(workdir / "forgetting-cassandra", seed=args.seed, store_url=url, **sized)]
    rows: list[Callable[[], ScenarioResult]] = [lambda: run_forgetting(workdir / "forgetting", seed=args.seed, **sized)]
    url, why = cassandra_race_url(args.store_url)
    if url:
        own = with_keyspace(url, FORGETTING_KEYSPACE)
        rows.append(lambda: run_forgetting(workdir / "forgetting-cassandra", seed=args.seed, store_url=own, **sized))
    elif not getattr(args, "forgetting_on_cluster", False):  # set by _run when the cluster will run it
        rows.append(lambda: ScenarioResult("forgetting", "cassandra", skipped=why))
    return rows


def with_keyspace(url: str, keyspace: str) -> str:
    """``url`` with its keyspace replaced: the same nodes and options, another keyspace."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{keyspace}"))


def cassandra_race_url(explicit: str) -> tuple[str, str]:
    """The Cassandra URL for the races and "" , or "" and why there is none."""
    if explicit:
        return explicit, ""
    try:
        import es_core.stores.cassandra  # noqa: F401
    except ImportError as exc:
        return "", f"no Cassandra backend in es_core ({exc})"
    host, port = os.environ.get("ES_CASSANDRA_HOST", "127.0.0.1"), int(os.environ.get("ES_CASSANDRA_PORT", "9042"))
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return "", f"no Cassandra node answers on {host}:{port} (scripts/cassandra-node start, or --store-url)"
    return f"cassandra://{host}:{port}/{RACE_KEYSPACE}?replication_factor=1&consistency=QUORUM", ""
