"""Bad input: a corpus of malformed inputs across the API, the CLI, rule files and stored data.

Each case is data: a name, the area it probes, what it does to a test bed (a copy of a small
SQLite store holding two members' histories and snapshots), and the documented answer it must
get: a specific error class from ``es_core.errors`` / ``downloads.errors``, exit code 2 with a
one-line error for the CLI, or, for damaged snapshots and injection-looking strings, a documented
recovery. After every case the runner checks that nothing was written (the rows of both tables
are unchanged, no file appeared) and that the store is still usable (``integrity_check`` is ok,
a new stream can be appended to and read back, a command for an undamaged member is answered).

``python -m reliability run --scenarios bad-input`` runs it; ``tests/reliability/test_corpus.py``
runs every case as its own test.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from downloads import (
    AcquireLicense,
    Catalogue,
    ClockSkewError,
    CommandRefusedError,
    DownloadService,
    InvalidCommandError,
    LateRequestError,
    LicenseNotHeldError,
    MemberAccount,
    NotSubscribedError,
    RegisterDevice,
    ReleaseLicense,
    RequestReusedError,
    RuleFileError,
    RuleSet,
    Subscribe,
    UnknownDeviceError,
    command_from_payload,
    load_catalogue,
    load_rules,
    new_registry,
)
from downloads.fallback import FallbackPolicy
from es_core import (
    MAX_EVENTS_PER_APPEND,
    MAX_PAYLOAD_BYTES,
    MAX_STREAM_ID_LENGTH,
    ConcurrencyError,
    DuplicateEventIdError,
    EventDecodeError,
    EventStore,
    Expect,
    InvalidEventError,
    InvalidExpectedVersionError,
    InvalidInputError,
    InvalidStoreUrlError,
    InvalidStreamIdError,
    NewEvent,
    PayloadTooLargeError,
    SchemaError,
    Snapshot,
    SnapshotError,
    SnapshotPolicy,
    SQLiteStore,
    StoreCorruptionError,
    UnknownEventTypeError,
    UnsupportedSchemaVersionError,
    open_store,
)

from .invariants import serial_replay
from .report import ScenarioResult, timed
from .workload import BASE_TIME, ScenarioService

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULES = ROOT / "data" / "rules" / "default.toml"
T = BASE_TIME
AFTER = T + timedelta(hours=3)  # after the template's history: commands then are on time
EXIT_2 = "exit status 2 and one error line"
RECOVERED = "recovered: the damaged snapshot is ignored and the member loads as a full replay would"
ACCEPTED = "accepted and stored verbatim, harmlessly"
Expected = type[BaseException] | tuple[type[BaseException], ...] | str


# -- the test bed --------------------------------------------------------------------------


class Bed:
    """One case's world: a copy of the template store in its own directory."""

    def __init__(self, directory: Path, rules: RuleSet, catalogue: Catalogue) -> None:
        self.dir = directory
        self.db = directory / "events.db"
        self.url = f"sqlite:///{self.db.resolve()}"
        self.rules, self.catalogue = rules, catalogue
        self._store: EventStore | None = None

    @property
    def store(self) -> EventStore:
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def service(self) -> DownloadService:
        return ScenarioService(self.store, self.rules, self.catalogue, snapshot_policy=SnapshotPolicy(every=3))

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Damage the stored data directly, as a bad disk, a bad tool or a bad migration would."""
        self.close()
        with sqlite3.connect(self.db) as db:
            db.execute(statement, params)
        db.close()

    def file(self, name: str, content: str | bytes) -> Path:
        """An input file for the case (rule files...), kept apart from the store's directory."""
        path = self.dir / "inputs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def ann_version(self) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("SELECT MAX(version) FROM events WHERE stream_id = 'member-ann'").fetchone()[0])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "downloads", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )


def build_template(directory: Path) -> tuple[Path, RuleSet, Catalogue]:
    """Two members with a little history: ``ann`` (standard; damaged by the stored-data cases)
    and ``bob`` (basic; never damaged, used to show the store still works)."""
    rules, catalogue = load_rules(), load_catalogue()
    directory.mkdir(parents=True, exist_ok=True)
    bed = Bed(directory, rules, catalogue)
    SQLiteStore.remove_files(bed.db)
    service = bed.service()
    for member, plan in (("ann", "standard"), ("bob", "basic")):
        service.handle(Subscribe(member_id=member, at=T, request_id=f"{member}-join", plan=plan))
        for device in ("phone", "tablet"):
            service.handle(RegisterDevice(member_id=member, at=T, request_id=f"{member}-{device}", device_id=device))
    for i, title in enumerate(("quiet-frontier", "after-circuit", "silver-harbour")):
        service.handle(
            AcquireLicense(
                member_id="ann", at=T + timedelta(hours=i), request_id=f"ann-get-{i}", device_id="phone", title_id=title
            )
        )
    bed.close()
    with sqlite3.connect(bed.db) as db:  # one self-contained file to copy
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return bed.db, rules, catalogue


def new_bed(template: Path, directory: Path, rules: RuleSet, catalogue: Catalogue) -> Bed:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, directory / "events.db")
    return Bed(directory, rules, catalogue)


# -- cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    area: str  # api | command | url | cli | rules | stored
    act: Callable[[Bed], Any]
    expect: Expected
    setup: Callable[[Bed], None] | None = None
    verify: Callable[[Bed, Any], str] | None = None  # for RECOVERED / ACCEPTED: "" when right
    damages_file: bool = False  # the case destroys the database file itself: no usability check

    @property
    def expected_name(self) -> str:
        if isinstance(self.expect, str):
            return self.expect
        if isinstance(self.expect, tuple):
            return " or ".join(e.__name__ for e in self.expect)
        return self.expect.__name__


def _event(**fields: Any) -> NewEvent:
    base: dict[str, Any] = {"event_type": "Probe", "data": {"ok": True}}
    base.update(fields)
    return NewEvent(**base)


def _append(stream: Any = "probe", events: Any = None, expected: Any = Expect.ANY) -> Callable[[Bed], Any]:
    return lambda bed: bed.store.append(stream, [_event()] if events is None else events, expected)


def _bad_event(**fields: Any) -> Callable[[Bed], Any]:
    return lambda bed: bed.store.append("probe", [_event(), _event(**fields)])  # the good one must not land either


def _nested(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth):
        child: list[Any] = []
        node.append(child)
        node = child
    return root


def _cmd(make: type, **fields: Any) -> Callable[[Bed], Any]:
    base = {"member_id": "ann", "at": AFTER, "request_id": f"bad-{uuid.uuid4().hex[:8]}"}
    return lambda bed: bed.service().handle(make(**{**base, **fields}))


def _construct(make: type, **fields: Any) -> Callable[[Bed], Any]:
    base = {"member_id": "ann", "at": T, "request_id": "bad-1"}
    return lambda bed: make(**{**base, **fields})


def _rules(text: str, name: str = "rules.toml") -> Callable[[Bed], Any]:
    def act(bed: Bed) -> Any:
        bed.file("default.toml", DEFAULT_RULES.read_text())  # so ``extends`` finds a parent next to it
        return load_rules(bed.file(name, text))

    return act


def _cli(*args: str) -> Callable[[Bed], Any]:
    return lambda bed: bed.cli(*(a.replace("{url}", bed.url).replace("{dir}", str(bed.dir)) for a in args))


def _url(url: str) -> Callable[[Bed], Any]:
    return lambda bed: open_store(url.replace("{dir}", str(bed.dir)))


def _inject_event(event_type: str, schema_version: int, data: bytes, metadata: bytes = b"{}") -> Callable[[Bed], None]:
    def setup(bed: Bed) -> None:
        bed.sql(
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, data, metadata, recorded_at)"
            " VALUES ('member-ann', ?, ?, ?, ?, ?, ?, ?)",
            (
                bed.ann_version() + 1,
                uuid.uuid4().bytes,
                event_type,
                schema_version,
                data,
                metadata,
                int(time.time() * 1e6),
            ),
        )

    return setup


def _damage_event(column: str, value: Any, version: int = 2) -> Callable[[Bed], None]:
    return lambda bed: bed.sql(
        f"UPDATE events SET {column} = ? WHERE stream_id = 'member-ann' AND version = ?", (value, version)
    )


def _inject_snapshot(
    state: bytes, *, state_type: str = MemberAccount.aggregate_type, schema: int = 1, ahead: int = 0
) -> Callable[[Bed], None]:
    def setup(bed: Bed) -> None:
        bed.sql(
            "INSERT OR REPLACE INTO snapshots VALUES ('member-ann', ?, ?, ?, ?, ?)",
            (bed.ann_version() + ahead, state_type, schema, state, int(time.time() * 1e6)),
        )

    return setup


def _load_ann(bed: Bed) -> Any:
    service = bed.service()
    return service.member("ann"), service.repository.stats


def _same_as_replay(bed: Bed, got: Any) -> str:
    """The member loaded as a snapshot-free replay does, the damage was noticed, and the member
    still takes commands (a snapshot ahead of its stream would leave every save in conflict)."""
    member, stats = got
    plain = serial_replay(bed.store, "ann", new_registry())
    if (member.version, msgspec.json.encode(member.state)) != (plain.version, msgspec.json.encode(plain.state)):
        return f"loaded v{member.version}, a replay gives v{plain.version}"
    if not stats.snapshots_ignored:
        return "the damaged snapshot was not reported as ignored"
    try:
        outcome = bed.service().handle(
            RegisterDevice(member_id="ann", at=AFTER, request_id="after-damage", device_id="laptop")
        )
    except Exception as exc:
        return f"the next command failed: {type(exc).__name__}: {exc}"
    return "" if outcome.granted else f"the next command was not granted: {outcome.reason}"


def _stored_verbatim(stream: str) -> Callable[[Bed, Any], str]:
    def verify(bed: Bed, got: Any) -> str:
        events = bed.store.read_stream(stream)
        if len(events) != 1 or events[0].stream_id != stream:
            return f"{stream!r} did not read back verbatim"
        with sqlite3.connect(bed.db) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        db.close()
        return "" if {"events", "snapshots"} <= tables else f"tables now: {sorted(tables)}"

    return verify


def _read_stream(bed: Bed) -> Any:
    return bed.store.read_stream("member-ann")


def _read_all(bed: Bed) -> Any:
    return list(bed.store.read_all())


def _truncate_file(bed: Bed) -> None:
    bed.close()
    data = bed.db.read_bytes()
    bed.db.write_bytes(data[: len(data) // 2])


def _garbage_file(bed: Bed) -> None:
    bed.close()
    bed.db.write_bytes(bytes(range(256)) * 64)


UNREADABLE = (SchemaError, StoreCorruptionError)  # stored data the code cannot read, said in the project's terms
JOIN = '{"plan": "standard", "at": "2026-03-16T09:00:00Z", "request_id": "x"}'
BAD_TIME = datetime(2026, 3, 16, 9, 0)  # naive

CASES: list[Case] = [
    # -- the store API: stream ids, expected versions, events, payloads, reads, snapshots --
    Case("stream-id-not-a-string", "api", _append(stream=123), InvalidStreamIdError),
    Case("stream-id-none", "api", _append(stream=None), InvalidStreamIdError),
    Case("stream-id-empty", "api", _append(stream=""), InvalidStreamIdError),
    Case("stream-id-over-limit", "api", _append(stream="s" * (MAX_STREAM_ID_LENGTH + 1)), InvalidStreamIdError),
    Case("stream-id-one-megabyte", "api", _append(stream="s" * 1_000_000), InvalidStreamIdError),
    Case("stream-id-newline", "api", _append(stream="member-ann\nmember-bob"), InvalidStreamIdError),
    Case("stream-id-nul-byte", "api", _append(stream="member-ann\x00"), InvalidStreamIdError),
    Case(
        "stream-id-sql-injection",
        "api",
        _append(stream="x'); DROP TABLE events;--"),
        ACCEPTED,
        verify=_stored_verbatim("x'); DROP TABLE events;--"),
    ),
    Case("expected-version-negative", "api", _append(expected=-1), InvalidExpectedVersionError),
    Case("expected-version-string", "api", _append(expected="3"), InvalidExpectedVersionError),
    Case("expected-version-bool", "api", _append(expected=True), InvalidExpectedVersionError),
    Case("expected-version-float", "api", _append(expected=1.0), InvalidExpectedVersionError),
    Case("expected-version-stale", "api", _append(stream="member-ann", expected=1), ConcurrencyError),
    Case(
        "expected-no-stream-but-exists",
        "api",
        _append(stream="member-ann", expected=Expect.NO_STREAM),
        ConcurrencyError,
    ),
    Case("events-not-a-list", "api", lambda bed: bed.store.append("probe", _event()), InvalidEventError),
    Case("events-plain-dicts", "api", _append(events=[{"event_type": "Probe", "data": {}}]), InvalidEventError),
    Case(
        "events-over-batch-limit",
        "api",
        _append(events=[_event() for _ in range(MAX_EVENTS_PER_APPEND + 1)]),
        InvalidEventError,
    ),
    Case("events-same-id-twice", "api", _append(events=[_event(event_id=uuid.UUID(int=7))] * 2), InvalidEventError),
    Case("event-type-empty", "api", _bad_event(event_type=""), InvalidEventError),
    Case("event-type-leading-digit", "api", _bad_event(event_type="1Probe"), InvalidEventError),
    Case("event-type-injection", "api", _bad_event(event_type="X'); DROP TABLE events;--"), InvalidEventError),
    Case("event-type-over-limit", "api", _bad_event(event_type="P" * 129), InvalidEventError),
    Case("event-type-not-a-string", "api", _bad_event(event_type=42), InvalidEventError),
    Case("schema-version-zero", "api", _bad_event(schema_version=0), InvalidEventError),
    Case("schema-version-string", "api", _bad_event(schema_version="1"), InvalidEventError),
    Case("schema-version-bool", "api", _bad_event(schema_version=True), InvalidEventError),
    Case("event-id-not-a-uuid", "api", _bad_event(event_id="not-a-uuid"), InvalidEventError),
    Case("data-a-list", "api", _bad_event(data=[1, 2]), InvalidEventError),
    Case("data-non-string-key", "api", _bad_event(data={1: "one"}), InvalidEventError),
    Case("data-nan", "api", _bad_event(data={"x": float("nan")}), InvalidEventError),
    Case("data-infinity", "api", _bad_event(data={"x": float("inf")}), InvalidEventError),
    Case("data-a-set", "api", _bad_event(data={"x": {1, 2}}), InvalidEventError),
    Case("data-naive-datetime", "api", _bad_event(data={"at": BAD_TIME}), InvalidEventError),
    Case("data-an-object", "api", _bad_event(data={"x": object()}), InvalidEventError),
    Case("data-bytes", "api", _bad_event(data={"x": b"\xff"}), InvalidEventError),
    Case("data-nested-100000-deep", "api", _bad_event(data={"x": _nested(100_000)}), InvalidEventError),
    Case("metadata-not-a-mapping", "api", _bad_event(metadata="{}"), InvalidEventError),
    Case("payload-over-one-mebibyte", "api", _bad_event(data={"x": "x" * MAX_PAYLOAD_BYTES}), PayloadTooLargeError),
    Case(
        "event-id-of-another-stream",
        "api",
        lambda bed: bed.store.append("probe", [_event(event_id=bed.store.read_stream("member-bob")[0].event_id)]),
        DuplicateEventIdError,
    ),
    Case("read-after-negative", "api", lambda bed: bed.store.read_stream("member-ann", after=-1), InvalidInputError),
    Case("read-limit-string", "api", lambda bed: bed.store.read_stream("member-ann", limit="10"), InvalidInputError),
    Case("truncate-beyond-stream", "api", lambda bed: bed.store.truncate_stream("member-bob", 99), InvalidInputError),
    Case("snapshot-not-a-snapshot", "api", lambda bed: bed.store.save_snapshot({"version": 1}), InvalidInputError),
    Case(
        "snapshot-of-no-events",
        "api",
        lambda bed: bed.store.save_snapshot(
            Snapshot(
                stream_id="member-bob", version=0, state_type="member", state_schema_version=1, state=b"{}", taken_at=T
            )
        ),
        InvalidInputError,
    ),
    Case(
        "snapshot-over-payload-limit",
        "api",
        lambda bed: bed.store.save_snapshot(
            Snapshot(
                stream_id="member-bob",
                version=1,
                state_type="member",
                state_schema_version=1,
                state=b"x" * (MAX_PAYLOAD_BYTES + 1),
                taken_at=T,
            )
        ),
        SnapshotError,
    ),
    Case("load-at-negative-version", "api", lambda bed: bed.service().member("ann", at_version=-1), InvalidInputError),
    Case(
        "load-known-by-naive-time", "api", lambda bed: bed.service().member("ann", known_by=BAD_TIME), InvalidInputError
    ),
    Case(
        "load-happened-by-naive-time",
        "api",
        lambda bed: bed.service().member("ann", happened_by=BAD_TIME),
        InvalidInputError,
    ),
    Case(
        "load-beyond-the-stream", "api", lambda bed: bed.service().member("ann", at_version=10_000), InvalidInputError
    ),
    # -- commands through the Aggregate Service ---------------------------------------------
    Case("command-naive-time", "command", _construct(Subscribe, at=BAD_TIME, plan="basic"), InvalidCommandError),
    Case(
        "command-device-clock-years-ahead",
        "command",
        lambda bed: DownloadService(bed.store, bed.rules, bed.catalogue, clock=lambda: T).handle(
            AcquireLicense(
                member_id="ann", at=T + timedelta(days=3 * 365), request_id="skewed", device_id="phone",
                title_id="silver-island",
            )
        ),
        ClockSkewError,
    ),
    Case(
        "command-later-than-the-lateness-bound",
        "command",
        _cmd(AcquireLicense, at=T - timedelta(hours=1), device_id="phone", title_id="silver-island"),
        LateRequestError,
    ),
    Case(
        "command-request-id-reused-for-another-title",
        "command",
        _cmd(AcquireLicense, request_id="ann-get-0", device_id="phone", title_id="silver-island"),
        RequestReusedError,
    ),
    Case("command-empty-member-id", "command", _construct(Subscribe, member_id="", plan="basic"), InvalidCommandError),
    Case(
        "command-member-id-over-limit",
        "command",
        _construct(Subscribe, member_id="m" * 101, plan="basic"),
        InvalidCommandError,
    ),
    Case(
        "command-member-id-with-slash",
        "command",
        _construct(Subscribe, member_id="ann/../bob", plan="basic"),
        InvalidCommandError,
    ),
    Case(
        "command-member-id-injection",
        "command",
        _construct(Subscribe, member_id="ann' OR '1'='1", plan="basic"),
        InvalidCommandError,
    ),
    Case(
        "command-request-id-one-megabyte",
        "command",
        _construct(Subscribe, request_id="r" * 1_000_000, plan="basic"),
        InvalidCommandError,
    ),
    Case("command-unknown-plan", "command", _cmd(Subscribe, member_id="zed", plan="platinum"), InvalidCommandError),
    Case(
        "command-unknown-title",
        "command",
        _cmd(AcquireLicense, device_id="phone", title_id="no-such-title"),
        InvalidCommandError,
    ),
    Case(
        "command-unknown-device",
        "command",
        _cmd(AcquireLicense, device_id="toaster", title_id="silver-harbour"),
        UnknownDeviceError,
    ),
    Case(
        "command-not-subscribed",
        "command",
        _cmd(RegisterDevice, member_id="zed", device_id="phone"),
        NotSubscribedError,
    ),
    Case(
        "command-licence-not-held",
        "command",
        _cmd(ReleaseLicense, license_id="lic-0000000000000000"),
        LicenseNotHeldError,
    ),
    Case("command-already-subscribed", "command", _cmd(Subscribe, plan="premium"), CommandRefusedError),
    Case(
        "command-not-a-command", "command", lambda bed: bed.service().handle({"type": "Subscribe"}), InvalidCommandError
    ),
    Case(
        "payload-unknown-command",
        "command",
        lambda bed: command_from_payload({"type": "Teleport"}),
        InvalidCommandError,
    ),
    Case(
        "payload-wrong-types",
        "command",
        lambda bed: command_from_payload(
            {"type": "Subscribe", "member_id": 5, "at": "yesterday", "request_id": None, "plan": ["basic"]}
        ),
        InvalidCommandError,
    ),
    Case(
        "payload-not-an-object", "command", lambda bed: command_from_payload("Subscribe ann basic"), InvalidCommandError
    ),
    # -- store URLs --------------------------------------------------------------------------
    Case("url-empty", "url", _url(""), InvalidStoreUrlError),
    Case("url-not-a-string", "url", lambda bed: open_store(42), InvalidStoreUrlError),  # type: ignore[arg-type]
    Case("url-a-bare-path", "url", _url("{dir}/other.db"), InvalidStoreUrlError),
    Case("url-unknown-scheme", "url", _url("postgres://localhost/events"), InvalidStoreUrlError),
    Case("url-sqlite-with-host", "url", _url("sqlite://host/{dir}/other.db"), InvalidStoreUrlError),
    Case("url-sqlite-no-path", "url", _url("sqlite:///"), InvalidStoreUrlError),
    Case("url-sqlite-a-directory", "url", _url("sqlite:///{dir}/"), InvalidStoreUrlError),
    Case(
        "url-sqlite-bad-option-value",
        "url",
        _url("sqlite:///{dir}/other.db?synchronous=sometimes"),
        InvalidStoreUrlError,
    ),
    Case("url-sqlite-unknown-option", "url", _url("sqlite:///{dir}/other.db?journal_mode=off"), InvalidStoreUrlError),
    Case(
        "url-sqlite-negative-timeout", "url", _url("sqlite:///{dir}/other.db?busy_timeout_ms=-5"), InvalidStoreUrlError
    ),
    Case("url-memory-with-host", "url", _url("memory://somewhere"), InvalidStoreUrlError),
    # a Cassandra URL must be refused before any connection is tried (port 9 answers nothing)
    Case("url-cassandra-no-keyspace", "url", _url("cassandra://127.0.0.1:9/"), InvalidStoreUrlError),
    Case("url-cassandra-port-not-a-number", "url", _url("cassandra://127.0.0.1:cql/ks"), InvalidStoreUrlError),
    Case(
        "url-cassandra-bad-replication",
        "url",
        _url("cassandra://127.0.0.1:9/ks?replication_factor=zero"),
        InvalidStoreUrlError,
    ),
    Case(
        "url-cassandra-bad-consistency",
        "url",
        _url("cassandra://127.0.0.1:9/ks?consistency=SOMETIMES"),
        InvalidStoreUrlError,
    ),
    Case(
        "url-cassandra-keyspace-injection",
        "url",
        _url("cassandra://127.0.0.1:9/ks;DROP%20KEYSPACE%20system"),
        InvalidStoreUrlError,
    ),
    Case(
        "url-a-file-that-is-not-a-database",
        "url",
        _url("sqlite:///{dir}/events.db"),
        StoreCorruptionError,
        setup=_garbage_file,
        damages_file=True,
    ),
    Case(
        "url-a-truncated-database",
        "url",
        lambda bed: bed.store.read_stream("member-ann"),
        StoreCorruptionError,
        setup=_truncate_file,
        damages_file=True,
    ),
    # -- the command line -----------------------------------------------------------------------
    Case("cli-members-not-a-number", "cli", _cli("simulate", "--members", "abc", "--store", "{url}"), EXIT_2),
    Case("cli-members-negative", "cli", _cli("simulate", "--members", "-5", "--days", "3", "--store", "{url}"), EXIT_2),
    Case("cli-days-zero", "cli", _cli("simulate", "--members", "3", "--days", "0", "--store", "{url}"), EXIT_2),
    Case(
        "cli-start-without-offset",
        "cli",
        _cli("simulate", "--start", "2026-01-01T08:00", "--store", "{url}"),
        EXIT_2,
    ),
    Case("cli-start-not-a-date", "cli", _cli("simulate", "--start", "1 January", "--store", "{url}"), EXIT_2),
    Case("cli-unknown-store-scheme", "cli", _cli("simulate", "--small", "--store", "postgres://x/y"), EXIT_2),
    Case("cli-store-not-empty", "cli", _cli("simulate", "--small", "--quiet", "--store", "{url}"), EXIT_2),
    Case(
        "cli-rules-missing-file",
        "cli",
        _cli("simulate", "--small", "--store", "{url}", "--rules", "{dir}/inputs/missing.toml"),
        EXIT_2,
    ),
    Case(
        "cli-rules-not-toml",
        "cli",
        lambda bed: bed.cli(
            "simulate", "--small", "--store", bed.url, "--rules", str(bed.file("bad.toml", "plans = ["))
        ),
        EXIT_2,
    ),
    Case("cli-unknown-command", "cli", _cli("teleport", "--store", "{url}"), EXIT_2),
    Case(
        "cli-explain-no-such-store",
        "cli",
        _cli("explain", "--store", "sqlite:///{dir}/missing.db", "--member", "ann"),
        EXIT_2,
    ),
    Case(
        "cli-check-bad-rule-file",
        "cli",
        lambda bed: bed.cli(
            "check", str(bed.file("wrong.toml", 'name = "x"\n[plans.basic]\ndevices_with_downloads = "two"\n'))
        ),
        EXIT_2,
    ),
    # -- rule files -----------------------------------------------------------------------------
    Case("rules-not-toml", "rules", _rules("name = 'x'\n[plans.basic\n"), RuleFileError),
    Case(
        "rules-not-utf8", "rules", lambda bed: load_rules(bed.file("latin.toml", b"name = '\xff\xfe'\n")), RuleFileError
    ),
    Case("rules-missing-name", "rules", _rules("[plans.basic]\ndevices_with_downloads = 1\n"), RuleFileError),
    Case("rules-no-plans", "rules", _rules('name = "empty"\n'), RuleFileError),
    Case("rules-plan-missing-limit", "rules", _rules('name = "x"\n[plans.basic]\n'), RuleFileError),
    Case(
        "rules-limit-wrong-type",
        "rules",
        _rules('name = "x"\n[plans.basic]\ndevices_with_downloads = "two"\n'),
        RuleFileError,
    ),
    Case(
        "rules-limit-negative",
        "rules",
        _rules('name = "x"\n[plans.basic]\ndevices_with_downloads = -1\n'),
        RuleFileError,
    ),
    Case(
        "rules-limit-fractional",
        "rules",
        _rules('name = "x"\n[plans.basic]\ndevices_with_downloads = 1.5\n'),
        RuleFileError,
    ),
    Case(
        "rules-title-limit-zero",
        "rules",
        _rules('extends = "default.toml"\nname = "x"\n[studios.meridian]\ntitle_downloads_per_year = 0\n'),
        RuleFileError,
    ),
    Case(
        "rules-unknown-key",
        "rules",
        _rules('extends = "default.toml"\nname = "x"\n[limits]\ndownlods = 3\n'),
        RuleFileError,
    ),
    Case(
        "rules-window-over-horizon",
        "rules",
        _rules('extends = "default.toml"\nname = "x"\n[limits]\nrolling_year_days = 100000\n'),
        RuleFileError,
    ),
    Case("rules-plans-not-a-table", "rules", _rules('name = "x"\nplans = "basic"\n'), RuleFileError),
    Case("rules-extends-itself", "rules", _rules('extends = "rules.toml"\nname = "x"\n'), RuleFileError),
    Case("rules-extends-missing-file", "rules", _rules('extends = "nowhere.toml"\nname = "x"\n'), RuleFileError),
    Case(
        "rules-studio-not-in-catalogue",
        "rules",
        lambda bed: _rules('extends = "default.toml"\nname = "x"\n[studios.acme]\nactive_downloads = 5\n')(
            bed
        ).check_against(bed.catalogue),
        RuleFileError,
    ),
    Case(
        "fallback-policy-unknown-mode",
        "rules",
        lambda bed: FallbackPolicy.load(bed.file("fallback.toml", '[fallback]\nmode = "maybe"\n')),
        RuleFileError,
    ),
    Case(
        "fallback-policy-negative-cap",
        "rules",
        lambda bed: FallbackPolicy.load(bed.file("fallback.toml", "[fallback]\nmax_provisional_per_member = -1\n")),
        RuleFileError,
    ),
    Case(
        "catalogue-leaves-before-it-arrives",
        "rules",
        lambda bed: load_catalogue(
            bed.file(
                "catalogue.toml",
                (
                    '[studios.s]\nname = "S"\n[studios.s.titles]\n'
                    'x = { name = "X", available_from = 2026-05-01, leaving_on = 2026-04-01 }\n'
                ),
            )
        ),
        RuleFileError,
    ),
    # -- stored data, damaged underneath the store ---------------------------------------------
    Case(
        "stored-unknown-event-type",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        UnknownEventTypeError,
        setup=_inject_event("Teleported", 1, b"{}"),
    ),
    Case(
        "stored-event-type-injection",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        UnknownEventTypeError,
        setup=_inject_event("X'); DROP TABLE events;--", 1, b"{}"),
    ),
    Case(
        "stored-newer-schema-version",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        UnsupportedSchemaVersionError,
        setup=_inject_event("DeviceRegistered", 9, b'{"device_id": "x"}'),
    ),
    Case(
        "stored-truncated-payload",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        EventDecodeError,
        setup=_inject_event("MemberSubscribed", 1, JOIN.encode()[:20]),
    ),
    Case(
        "stored-non-json-payload",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        EventDecodeError,
        setup=_inject_event("MemberSubscribed", 1, b"\x00\x01\x02garbage"),
    ),
    Case(
        "stored-payload-a-json-array",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        EventDecodeError,
        setup=_inject_event("MemberSubscribed", 1, b"[1, 2, 3]"),
    ),
    Case(
        "stored-payload-wrong-types",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        EventDecodeError,
        setup=_inject_event("MemberSubscribed", 1, b'{"plan": 5, "at": "yesterday"}'),
    ),
    Case(
        "stored-payload-missing-fields",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        EventDecodeError,
        setup=_inject_event("LicenseAcquired", 1, b"{}"),
    ),
    Case(
        "stored-truncated-payload-read-stream",
        "stored",
        _read_stream,
        UNREADABLE,
        setup=_inject_event("MemberSubscribed", 1, JOIN.encode()[:20]),
    ),
    Case(
        "stored-non-json-payload-read-all",
        "stored",
        _read_all,
        UNREADABLE,
        setup=_inject_event("MemberSubscribed", 1, b"\x00garbage"),
    ),
    Case(
        "stored-non-json-metadata",
        "stored",
        _read_stream,
        UNREADABLE,
        setup=_inject_event("MemberSubscribed", 1, JOIN.encode(), b"{not json"),
    ),
    Case(
        "stored-recorded-at-not-a-number",
        "stored",
        _read_stream,
        UNREADABLE,
        setup=_damage_event("recorded_at", "yesterday"),
    ),
    Case(
        "stored-event-id-wrong-length", "stored", _read_stream, UNREADABLE, setup=_damage_event("event_id", b"\x01\x02")
    ),
    Case(
        "stored-version-gap",
        "stored",
        _cmd(RegisterDevice, device_id="laptop"),
        StoreCorruptionError,
        # no snapshot covers the hole, so the load must replay across it (a covered hole is retention)
        setup=lambda bed: (
            bed.sql("DELETE FROM events WHERE stream_id = 'member-ann' AND version = 2"),
            bed.sql("DELETE FROM snapshots WHERE stream_id = 'member-ann'"),
        ),
    ),
    Case(
        "snapshot-garbage-bytes",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b"\x00\xffgarbage"),
        verify=_same_as_replay,
    ),
    Case(
        "snapshot-wrong-shape",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b'{"plan": 42}'),
        verify=_same_as_replay,
    ),
    Case(
        "snapshot-truncated-json",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b'{"plan": "stand'),
        verify=_same_as_replay,
    ),
    Case(
        "snapshot-newer-state-schema",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b"{}", schema=99),
        verify=_same_as_replay,
    ),
    Case(
        "snapshot-of-another-type",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b"{}", state_type="licence"),
        verify=_same_as_replay,
    ),
    Case(
        "snapshot-ahead-of-its-stream",
        "stored",
        _load_ann,
        RECOVERED,
        setup=_inject_snapshot(b"{}", ahead=10),
        verify=_same_as_replay,
    ),
]


# -- running cases ---------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    got: str = ""
    problems: list[str] = field(default_factory=list)
    lost_rows: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def _fingerprint(bed: Bed) -> tuple[str, int]:
    """A digest of every stored row (both tables) and of the files in the bed, and the event
    count; file bytes when the database cannot be read at all."""
    digest = hashlib.sha256()
    for path in sorted(bed.dir.iterdir()):
        if not path.name.startswith("events.db") and path.name != "inputs":
            digest.update(path.name.encode())
    rows = 0
    try:
        db = sqlite3.connect(f"file:{bed.db}?mode=ro", uri=True)
        try:
            for row in db.execute("SELECT * FROM events ORDER BY position"):
                digest.update(repr(row).encode())
                rows += 1
            for row in db.execute("SELECT * FROM snapshots ORDER BY stream_id, version"):
                digest.update(repr(row).encode())
        finally:
            db.close()
    except sqlite3.DatabaseError:
        digest.update(bed.db.read_bytes() if bed.db.exists() else b"")
    return digest.hexdigest(), rows


def _usable(bed: Bed) -> str:
    """Empty when the store still works: sound file, a fresh stream appends and reads back, and
    an undamaged member's command is answered."""
    bed.close()
    store = bed.store
    verdict = store.integrity_check()  # type: ignore[attr-defined]
    if verdict != "ok":
        return f"integrity_check says {verdict!r}"
    stream = f"usable-{uuid.uuid4().hex[:8]}"
    store.append(stream, [_event(data={"n": 1})], Expect.NO_STREAM)
    if [e.data for e in store.read_stream(stream)] != [{"n": 1}]:
        return "a new event did not read back"
    outcome = bed.service().handle(
        AcquireLicense(
            member_id="bob", at=T, request_id=f"usable-{stream}", device_id="phone", title_id="silver-harbour"
        )
    )
    return "" if outcome.status in ("granted", "denied") else "a command for an undamaged member was not answered"


def _check_expected(case: Case, got: Any, error: BaseException | None, bed: Bed) -> list[str]:
    if case.expect == EXIT_2:
        if error is not None:
            return [f"raised {type(error).__name__}: {error}"]
        stderr = got.stderr.strip()
        lines = [line for line in stderr.splitlines() if "error:" in line]
        problems = [] if got.returncode == 2 else [f"exit status {got.returncode}, not 2"]
        if "Traceback" in stderr or len(lines) != 1:
            problems.append(f"not one error line: {stderr[-300:]!r}")
        return problems
    if case.expect in (RECOVERED, ACCEPTED):
        if error is not None:
            return [f"raised {type(error).__name__}: {error}"]
        assert case.verify is not None
        why = case.verify(bed, got)
        return [why] if why else []
    assert not isinstance(case.expect, str)
    if error is None:
        return [f"no error (returned {str(got)[:120]!r})"]
    if not isinstance(error, case.expect):
        return [f"raised {type(error).__module__}.{type(error).__name__}: {str(error)[:200]}"]
    return [] if str(error) else ["the error has no message"]


def run_case(case: Case, bed: Bed) -> CaseResult:
    """Run one case on its own bed: the documented answer, nothing written, store usable."""
    out = CaseResult(case)
    try:
        if case.setup is not None:
            case.setup(bed)
        before, rows_before = _fingerprint(bed)
        got: Any = None
        error: BaseException | None = None
        try:
            got = case.act(bed)
        except Exception as exc:  # RecursionError included: one bad case cannot take the run down
            error = exc
        bed.close()
        after, rows_after = _fingerprint(bed)
        if case.expect != ACCEPTED and after != before:  # an accepted input is written, by design
            out.problems.append("it wrote to the store")
            out.lost_rows = rows_after < rows_before
        out.got = (
            type(error).__name__
            if error is not None
            else (f"exit {got.returncode}" if isinstance(got, subprocess.CompletedProcess) else "returned")
        )
        out.problems[:0] = _check_expected(case, got, error, bed)
        if not case.damages_file:
            why = _usable(bed)
            if why:
                out.problems.append(f"store unusable afterwards: {why}")
    except Exception as exc:  # the runner itself failed on this case: report it, go on
        out.problems.append(f"the case could not run: {type(exc).__name__}: {exc}")
    finally:
        bed.close()
    return out


def run_bad_input(workdir: Path, *, cases: list[Case] | None = None) -> ScenarioResult:
    result = ScenarioResult("bad-input", "sqlite", fault_kind="bad inputs", ack_kind="as documented")
    quiet = logging.NullHandler()  # the repository logs each damaged snapshot it ignores: expected here
    logging.getLogger("es_core").addHandler(quiet)
    with timed(result):
        chosen = CASES if cases is None else cases
        template, rules, catalogue = build_template(workdir / "template")
        areas: dict[str, int] = {}
        for n, case in enumerate(chosen):
            out = run_case(case, new_bed(template, workdir / f"case-{n:03d}", rules, catalogue))
            shutil.rmtree(workdir / f"case-{n:03d}", ignore_errors=True)
            result.faults += 1
            areas[case.area] = areas.get(case.area, 0) + 1
            if out.ok:
                result.acknowledged += 1
                continue
            kind = "lost" if out.lost_rows else "violation"
            result.problem(kind, f"{case.name} [{case.area}]: expected {case.expected_name}; {'; '.join(out.problems)}")
        result.figures = {"cases": len(chosen), "by_area": areas, "as_documented": result.acknowledged}
        result.summary = (
            f"{len(chosen)} malformed inputs ({', '.join(f'{n} {a}' for a, n in areas.items())}): "
            f"{result.acknowledged} gave their documented answer, wrote nothing and left the store usable"
        )
    logging.getLogger("es_core").removeHandler(quiet)
    return result
