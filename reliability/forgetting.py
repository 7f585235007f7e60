"""Forgetting: members forgotten while writers and a projection run, then everything scanned.

A protected store (device names sealed per member), SQLite or Cassandra, takes seeded commands
from writer threads, each with its own store handle and service (a cache of members and of data
keys). A projection thread catches the read models up over and over and writes their rows to a
JSON file, as a service would persist them. Meanwhile some members are forgotten
(``DownloadService.forget_member``), after a retention run has archived the start of their
streams (sealed) to a JSON-lines file; another runs at the end.

Afterwards: no byte of a forgotten member's device names is left in any file the run wrote (on
SQLite the database and its write-ahead log; the read models, the archive) nor, on Cassandra, in
any value of any row of any table of the run's keyspace, read through CQL
(``reliability.plaintext_scan``); every other member's names still read back, their events
before the forgetting are unchanged, and their streams pass the usual checks (every acknowledged
event stored once, every limit held).

On Cassandra the node's own files (SSTables, commit log) are not scanned. Sealing happens in
``EventStore``, before the backend is called, so the node is never sent a personal field in the
clear: what it holds is what the client sent, and the CQL scan reads all of it that is live.
SSTables are compressed (LZ4 by default), so a byte search of them could not find a plaintext
even if one were there, and a node may run on another machine. Rows deleted or overwritten
during the run (retention's archived events, a forgotten member's wrapped key) stay in the
node's files until compaction; the CQL scan cannot see them. The archived events are scanned in
the archive file, and a data key is stored only wrapped by the key-encryption key, which never
reaches the node.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from downloads import MemberForgottenError, ReadModels, RegisterDevice, personal_data
from es_core import (
    FORGOTTEN,
    EventStore,
    JsonlArchive,
    LocalKeyEncryptionKey,
    RetentionPolicy,
    SubjectForgottenError,
    apply_retention,
    open_store,
)

if TYPE_CHECKING:
    from es_core.stores.cassandra import CassandraStore

from .plaintext_scan import ScanTotals, scan_files, scan_keyspace
from .report import ScenarioResult, timed
from .workload import (
    BASE_TIME,
    DEVICES,
    Ack,
    MemberView,
    learn,
    next_command,
    send_until_answered,
    service_for,
    subscribe_all,
    until_answered,
    verify_members,
    world,
)

NAMED_WITHIN = 60.0  # seconds the projection may take to show a victim's names before they are forgotten
KEK = LocalKeyEncryptionKey(bytes(range(32)), "reliability-kek")  # a fixed test key: the run is seeded


def run_forgetting(
    workdir: Path,
    *,
    seed: int,
    store_url: str = "",
    members: int = 8,
    victims: int = 2,
    writers: int = 3,
    commands: int = 60,
) -> ScenarioResult:
    """On a SQLite file in ``workdir``, or on the Cassandra keyspace ``store_url`` names, which is
    dropped first (so it must be the run's own) and scanned afterwards."""
    url = store_url or f"sqlite:///{workdir / 'events.db'}"
    on_cassandra = url.startswith("cassandra:")
    label = "cassandra" if on_cassandra else "sqlite"
    result = ScenarioResult("forgetting", label, fault_kind="members forgotten", ack_kind="commands")
    with timed(result):
        if on_cassandra:
            _fresh_keyspace(url)
        _run(result, workdir, url, seed, members, victims, writers, commands)
    return result


def _fresh_keyspace(url: str) -> None:
    """Drop the keyspace and create it again: a rerun starts clean, and on a cluster the schema is
    created once, before the writers' handles open it (as ``CassandraStore.create`` advises)."""
    from es_core.stores.cassandra import CassandraStore

    CassandraStore.drop(url)
    CassandraStore.create(url)


def secret(member: str, device: str, seed: int) -> str:
    """A device name no other text in the run can contain by chance."""
    return f"{member}'s {device} #{random.Random(f'{seed}:{member}:{device}').getrandbits(48):012x}"


def _run(
    result: ScenarioResult,
    workdir: Path,
    url: str,
    seed: int,
    n_members: int,
    n_victims: int,
    n_writers: int,
    n_commands: int,
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    rules, catalogue = world()
    members = [f"f{k:02d}" for k in range(n_members)]
    rng = random.Random(f"{seed}:forgetting")
    victims = sorted(rng.sample(members, n_victims))

    def protected() -> EventStore:
        store = open_store(url)
        store.protect(KEK, personal_data(), initialise=True)
        return store

    setup_store = protected()
    setup = service_for(setup_store, rules, catalogue)
    acks = subscribe_all(setup, members, "setup")
    for member in members:  # names for the two devices every member starts with
        for k, device in enumerate(DEVICES[2:4]):
            acks.append(
                send_until_answered(
                    setup,
                    RegisterDevice(
                        member_id=member,
                        at=BASE_TIME,
                        request_id=f"setup-name-{member}-{k}",
                        device_id=device,
                        kind=device,
                        device_name=secret(member, device, seed),
                    ),
                )
            )
    stop = threading.Event()
    milestones = [threading.Event() for _ in victims]  # writer 0 passes them: forget then
    errors: list[str] = []
    models_path, archive = workdir / "read_models.json", JsonlArchive(workdir / "archive.jsonl")
    lock = threading.Lock()

    def writer(w: int) -> None:
        store = protected()
        service = service_for(store, rules, catalogue, max_attempts=50)  # writers contend on few members
        wrng = random.Random(f"{seed}:writer:{w}")
        views = {m: MemberView() for m in members}
        try:
            for i in range(n_commands):
                if w == 0:
                    for k, milestone in enumerate(milestones):
                        if i == (k + 1) * n_commands // (len(milestones) + 1):
                            milestone.set()
                member = wrng.choice(members)
                at = BASE_TIME + timedelta(minutes=i + 1, seconds=w)
                command = next_command(wrng, member, f"w{w}-c{i}", at, views[member])
                if isinstance(command, RegisterDevice):  # a new device gets a name too
                    command = RegisterDevice(
                        member_id=member,
                        at=at,
                        request_id=command.request_id,
                        device_id=command.device_id,
                        kind=command.kind,
                        device_name=secret(member, command.device_id, seed),
                    )
                ack = send_until_answered(service, command)  # an unknown outcome: sent again
                learn(views[member], command, ack)
                with lock:
                    acks.append(ack)
        except Exception as exc:  # reported, not swallowed: the scenario then fails
            errors.append(f"writer {w}: {type(exc).__name__}: {exc}")
        finally:
            for milestone in milestones:
                milestone.set()
            store.close()

    def projection() -> None:
        store = protected()
        models = ReadModels(store)
        try:
            while True:
                finished = stop.is_set()
                calls = until_answered(models.catch_up)[1]  # a read that timed out is read again
                result.figures["reads_retried"] = result.figures.get("reads_retried", 0) + calls - 1
                _write_rows(models_path, models)
                result.figures["projection_catch_ups"] = result.figures.get("projection_catch_ups", 0) + 1
                if finished:
                    break
        except Exception as exc:
            errors.append(f"projection: {type(exc).__name__}: {exc}")
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)]
    watcher = threading.Thread(target=projection)
    for thread in (*threads, watcher):
        thread.start()
    before: dict[str, list[tuple[Any, ...]]] = {}
    forgetter = service_for(setup_store, rules, catalogue, max_attempts=20)
    # the victims' streams only: the survivors' stay whole for the final checks
    retention = ([forgetter.repository], [RetentionPolicy(category="member", keep_last=3)])
    victim_streams = [f"member-{v}" for v in victims]
    result.figures["archived_before_forgetting"] = apply_retention(
        *retention, archive=archive, streams=victim_streams
    ).archived
    in_clear = 0
    for k, victim in enumerate(victims):  # while the writers run
        milestones[k].wait()
        # the names went in before the threads started: wait for the projection to show them
        # (a slow store or a crowded machine must not make the later scan prove nothing)
        in_clear += _named_in(models_path, [secret(victim, d, seed).encode() for d in DEVICES], NAMED_WITHIN)
        before = {m: _events(setup_store, m) for m in members if m not in victims}
        outcome, calls = until_answered(
            lambda v=victim, k=k: forgetter.forget_member(v, BASE_TIME + timedelta(minutes=k + 1), f"forget-{v}")
        )
        result.figures["forgets_retried"] = result.figures.get("forgets_retried", 0) + calls - 1
        result.faults += 1
        acks.append(Ack("forget-" + victim, victim, "ForgetMember", outcome.status, outcome.events))
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    result.problems.extend(errors[:3])
    if errors:
        result.error = errors[0]
        return
    result.figures["archived_after_forgetting"] = apply_retention(
        *retention, archive=archive, streams=victim_streams
    ).archived
    _check(result, setup_store, members, victims, before, seed)
    survivors = [m for m in members if m not in victims]
    verify_members(setup_store, survivors, [a for a in acks if a.member_id in survivors], rules, catalogue, result)
    refused = [
        a
        for a in acks
        if a.member_id in victims and a.error in (MemberForgottenError.__name__, SubjectForgottenError.__name__)
    ]
    result.acknowledged = sum(1 for a in acks if a.answered)
    result.figures.update(
        members=n_members,
        victims=n_victims,
        writers=n_writers,
        commands_refused_after_forgetting=len(refused),
        commands_retried=sum(1 for a in acks if a.attempts > 1),
        victims_named_in_read_models_before_forgetting=in_clear,
    )
    setup_store.close()
    if url.startswith("cassandra:"):
        from es_core.stores.cassandra import CassandraStore as Cassandra  # the driver: only on this path

        with Cassandra.from_url(url) as scanner:  # a fresh handle: nothing cached from the run
            _scan(result, workdir, members, victims, seed, scanner)
    else:
        _scan(result, workdir, members, victims, seed)


def _named_in(path: Path, names: list[bytes], seconds: float) -> bool:
    """Whether the file at ``path`` holds one of ``names``, waiting up to ``seconds`` for it."""
    deadline = time.monotonic() + seconds
    while True:
        seen = path.read_bytes() if path.exists() else b""
        if any(name in seen for name in names):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _events(store: EventStore, member: str) -> list[tuple[Any, ...]]:
    return [(e.version, e.event_id, e.event_type, e.data) for e in store.read_stream(f"member-{member}")]


def _write_rows(path: Path, models: ReadModels) -> None:
    """The read models' rows, replaced atomically (as a service persisting them would)."""
    rows = {model.name: model.rows() for model in models.all()}
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(rows, default=str))
    os.replace(scratch, path)


def _check(
    result: ScenarioResult,
    store: EventStore,
    members: list[str],
    victims: list[str],
    before: dict[str, list[tuple[Any, ...]]],
    seed: int,
) -> None:
    for member in members:
        names = [
            e.data["device_name"]
            for e in store.read_stream(f"member-{member}")
            if e.event_type == "DeviceRegistered" and e.data.get("device_name")
        ]
        if member in victims:
            if any(name != FORGOTTEN for name in names):
                result.problem("violation", f"{member} is forgotten but a device name reads in the clear")
        elif any(name == FORGOTTEN or not name.startswith(f"{member}'s ") for name in names):
            result.problem("violation", f"{member} was not forgotten but their device names changed")
    for member, events in before.items():
        if _events(store, member)[: len(events)] != events:
            result.problem("violation", f"{member}'s events changed while others were forgotten")


def _scan(
    result: ScenarioResult,
    workdir: Path,
    members: list[str],
    victims: list[str],
    seed: int,
    store: CassandraStore | None = None,
) -> None:
    """Every file of the run, byte for byte, and (given a Cassandra ``store``) every value of every
    table of its keyspace, for every device name of a forgotten member."""
    plaintexts = {v: [secret(v, d, seed).encode() for d in DEVICES] for v in victims}
    totals = ScanTotals()
    scan_files(workdir, plaintexts, totals)
    where = f"{totals.files} files ({totals.bytes} bytes)"
    if store is not None:
        keyspace = store.keyspace
        scan_keyspace(store.session, keyspace, plaintexts, totals)
        result.figures.update(
            tables_scanned=totals.tables,
            rows_scanned=totals.rows,
            values_scanned=totals.values,
            rows_by_table=totals.rows_by_table,
        )
        where += f" and {totals.rows} rows of {totals.tables} tables of keyspace {keyspace}"
        if not totals.rows_by_table.get("events"):  # a scan that read no event proves nothing
            result.problem("violation", f"the scan of keyspace {keyspace} read no events")
    for finding in totals.findings:  # one per file or column and member: each is named
        result.problem("violation", f"{finding.where} holds {finding.owner}'s device name in the clear")
    result.figures.update(files_scanned=totals.files, bytes_scanned=totals.bytes)
    found = "plaintext of theirs found" if totals.findings else "no plaintext of theirs"
    result.summary = (
        f"{len(victims)} of {len(members)} members forgotten under live writers and a projection; {found} in {where}"
    )
    retried = sum(result.figures.get(k, 0) for k in ("commands_retried", "forgets_retried", "reads_retried"))
    if retried:  # unknown outcomes and timeouts on a replicated store: sent again, never applied twice
        result.summary += f" ({retried} call{'s' if retried != 1 else ''} sent again after a store error)"
