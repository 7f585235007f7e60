"""The implementations under test, each behind the same small interface: write a member's
history in batches, run one command as one durable append, load an account, read the global
log, rebuild a projection."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from es_core import NO_SNAPSHOTS, EventStore, MemoryStore, ProjectionRunner, Repository, SnapshotPolicy, SQLiteStore

from .floors import SQLiteReadFloor, SQLiteWriteFloor, sqlite_settings
from .target import Target
from .workload import Command, MemberAccount, TitleActivity, registry, run_command

Step = Callable[[Command], None]


class Subject(Protocol):
    def batch(self, mid: str, plan: list[Command], chunk: int) -> None: ...
    def writer(self, mid: str) -> Step: ...
    def load(self, mid: str) -> object: ...

def stream_of(mid: str) -> str:
    return MemberAccount.stream_id_for(mid)

class EsCore:
    """es_core as a service uses it: aggregates, a repository, and the store's public API."""

    def __init__(self, store: EventStore, *, snapshot_every: int | None = None) -> None:
        self.store = store
        self.registry = registry()
        policy = SnapshotPolicy(every=snapshot_every) if snapshot_every else NO_SNAPSHOTS
        self.repository = Repository(store, self.registry, MemberAccount, policy)

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        account = MemberAccount(mid)
        for start in range(0, len(plan), chunk):
            for command in plan[start : start + chunk]:
                run_command(account, command)
            self.repository.save(account)

    def writer(self, mid: str) -> Step:
        account, save = MemberAccount(mid), self.repository.save

        def step(command: Command) -> None:
            run_command(account, command)
            save(account)

        return step

    def load(self, mid: str) -> MemberAccount:
        return self.repository.load(mid)

    def summary(self, mid: str) -> tuple[Any, ...]:
        account = self.load(mid)
        s = account.state
        return account.version, s.plan, sorted(s.devices), sorted(s.active), s.acquired, s.renewed, s.released

    def read_all(self) -> int:
        count = 0
        for _ in self.store.read_all():
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        projection = TitleActivity()
        ProjectionRunner(self.store, self.registry, projection).rebuild()
        return projection.summary()

    def settings(self) -> dict[str, str]:
        if isinstance(self.store, SQLiteStore):
            return sqlite_settings(self.store._db)
        return {"store": type(self.store).__name__}

class Floor:
    """The raw sqlite3 floor: writes to its own file, reads es_core's file."""

    def __init__(self, writer: SQLiteWriteFloor | None, reader: SQLiteReadFloor | None, *, snapshots: bool = False):
        self.writer_db, self.reader, self.snapshots = writer, reader, snapshots

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        assert self.writer_db is not None
        stream = stream_of(mid)
        for start in range(0, len(plan), chunk):
            self.writer_db.append_batch(stream, start + 1, [(c.kind, c.args) for c in plan[start : start + chunk]])

    def writer(self, mid: str) -> Step:
        assert self.writer_db is not None
        append, stream, version = self.writer_db.append, stream_of(mid), 0

        def step(command: Command) -> None:
            nonlocal version
            version += 1
            append(stream, version, command.kind, command.args)

        return step

    def load(self, mid: str) -> object:
        assert self.reader is not None
        if self.snapshots:
            return self.reader.load_with_snapshot(stream_of(mid))
        return self.reader.load(stream_of(mid))

    def read_all(self) -> int:
        assert self.reader is not None
        count = 0
        for _ in self.reader.read_all():
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        assert self.reader is not None
        projection = TitleActivity()
        handle = projection.handle_payload
        for _, event_type, data in self.reader.read_all():
            handle(event_type, data)
        return projection.summary()

class Peer:
    """The ``eventsourcing`` library's application, as its documentation shows it used."""

    def __init__(self, module: Any, app: Any) -> None:
        self.m, self.app = module, app

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        account = None
        for start in range(0, len(plan), chunk):
            for command in plan[start : start + chunk]:
                if account is None:
                    account = self.m.open_account(command.args)
                else:
                    run_command(account, command)
            self.app.save(account)

    def writer(self, mid: str) -> Step:
        account: Any = None
        save, open_account = self.app.save, self.m.open_account

        def step(command: Command) -> None:
            nonlocal account
            if account is None:
                account = open_account(command.args)
            else:
                run_command(account, command)
            save(account)

        return step

    def load(self, mid: str) -> Any:
        return self.app.repository.get(self.m.account_id(mid))

    def close(self) -> None:
        self.app.close()

    def summary(self, mid: str) -> tuple[Any, ...]:
        a = self.load(mid)
        return a.version, a.plan, sorted(a.devices), sorted(a.active), a.acquired, a.renewed, a.released

    def read_all(self) -> int:
        count = 0
        for _ in self.m.read_log(self.app):
            count += 1
        return count

    def rebuild(self) -> tuple[int, int, int]:
        projection = TitleActivity()
        handle = projection.handle_object
        for event in self.m.read_log_typed(self.app):
            handle(type(event).__name__, event)
        return projection.summary()

class CassandraFloor:
    """The raw-driver floor (``floors.CassandraFloor``) as a subject."""

    def __init__(self, floor: Any) -> None:
        self.floor = floor

    def batch(self, mid: str, plan: list[Command], chunk: int) -> None:
        for start in range(0, len(plan), chunk):
            self.floor.append_batch(stream_of(mid), start + 1, [(c.kind, c.args) for c in plan[start : start + chunk]])

    def writer(self, mid: str) -> Step:
        stream, version = stream_of(mid), 0

        def step(command: Command) -> None:
            nonlocal version
            version += 1
            self.floor.append(stream, version, command.kind, command.args)

        return step

    def load(self, mid: str) -> object:
        return self.floor.load(stream_of(mid))

def load_peer(enabled: bool) -> tuple[Any | None, dict[str, Any]]:
    """The peer module, or None and why not: the library is an optional extra."""
    if not enabled:
        return None, {"available": False, "reason": "disabled with --no-peer"}
    try:
        module = importlib.import_module("benchmarks.peer")
    except ImportError as exc:
        return None, {"available": False, "reason": f"eventsourcing is not installed ({exc})"}
    return module, {"available": True, "library": "eventsourcing", "version": module.version()}

def open_es(target: Target, name: str) -> EventStore:
    if target.kind == "memory":
        return MemoryStore()
    return SQLiteStore(target.path(name), synchronous=target.synchronous)
