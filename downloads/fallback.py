"""Fallbacks: what the Aggregate Service answers when the event store cannot (Netflix named
reliability "through fallbacks").

``FallbackService`` wraps a ``DownloadService``. While the store answers, it only passes commands
through. When a command fails with ``StoreUnavailableError`` (``StoreTimeoutError`` included), it
follows an explicit ``FallbackPolicy`` instead of failing the request:

* ``mode = "deny"``: answer a denial that says to try again later (rule ``store_unavailable``,
  with ``retry_at``). Nothing is recorded, so nothing needs reconciling.
* ``mode = "grant_provisionally"``: for the commands the policy lists (downloads, renewals,
  plays), grant at once, at most ``max_provisional_per_member`` unconfirmed grants per member,
  and record each grant in a durable local journal *before* answering. Other commands are denied.
  When the store is back, ``reconcile()`` replays every journalled command through the real
  service, with its original request id and time, decided at the service time it was granted
  (``DownloadService.handle(..., accepted_at=...)``): a grant the rules still allow is
  *confirmed*; one they now deny is *revoked* (the device must delete that download); a command
  that no longer applies is *refused*. A retry of a journalled request once the store is back
  settles that request first and returns the real outcome.

The client's clock is held to the same bound as by the service: a command whose time is further
from the service's clock than the rules' ``max_skew_minutes`` is refused with ``ClockSkewError``
before any fallback answer, and nothing is journalled. (The lateness bound needs the member's
state, which the store holds: it is not checked while the store is out, nor on reconciliation,
where the service's own record of when it granted is the time that counts.) A request id that
is journalled already must repeat its request: another command under it is refused with
``RequestReusedError``.

Because the replay uses the original request id, a command whose write landed before its reply
was lost (a timeout) is recognised as a retry and written once, never twice.

A small circuit breaker keeps an outage cheap: after ``trip_after_failures`` consecutive store
failures, commands go straight to the fallback for ``cool_down_seconds``; the next command then
probes the store again. The store's own timeouts (SQLite ``busy_timeout_ms``, the Cassandra
driver's request timeout) bound how long one probe waits.

The policy is data (a ``[fallback]`` table in a TOML file, or ``FallbackPolicy(...)``)::

    [fallback]
    mode = "grant_provisionally"
    max_provisional_per_member = 1
    retry_after_seconds = 60
    provisional_commands = ["AcquireLicense", "RenewLicense", "PlayDownload"]
    trip_after_failures = 3
    cool_down_seconds = 5.0
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from es_core import ConcurrencyError, InvalidInputError, StoreUnavailableError

from . import policy as _policy
from ._files import convert, read_toml
from .answers import FALLBACK_DENY, FALLBACK_PROVISIONAL, Answer, Outcome
from .clock import check_skew
from .commands import COMMAND_TYPES, AcquireLicense, Command, command_from_payload
from .errors import (
    CommandRefusedError,
    DownloadsError,
    InvalidCommandError,
    RequestForgottenError,
    RuleFileError,
)
from .member import license_id_for
from .requests import check_same_request, fields_of_payload
from .service import DownloadService

DENY = "deny"
GRANT_PROVISIONALLY = "grant_provisionally"
MODES = (DENY, GRANT_PROVISIONALLY)
STORE_UNAVAILABLE = "store_unavailable"
"""The rule a fallback denial names, so read models and clients can tell it from a business rule."""

COMMAND_NAMES = tuple(sorted(c.__name__ for c in COMMAND_TYPES))

# what each reconciled grant came to
CONFIRMED, REVOKED, REFUSED, FORGOTTEN = "confirmed", "revoked", "refused", "forgotten"


class _PolicySpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    mode: Literal["deny", "grant_provisionally"] = "deny"
    max_provisional_per_member: Annotated[int, msgspec.Meta(ge=0)] = 1
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=1)] = 60
    provisional_commands: tuple[str, ...] = ("AcquireLicense", "RenewLicense", "PlayDownload")
    trip_after_failures: Annotated[int, msgspec.Meta(ge=0)] = 3
    cool_down_seconds: Annotated[float, msgspec.Meta(ge=0)] = 5.0


@dataclass(frozen=True)
class FallbackPolicy:
    """What to answer while the store cannot. ``trip_after_failures = 0`` turns the circuit
    breaker off (every command then tries the store first)."""

    mode: str = DENY
    max_provisional_per_member: int = 1
    retry_after_seconds: int = 60
    provisional_commands: tuple[str, ...] = ("AcquireLicense", "RenewLicense", "PlayDownload")
    trip_after_failures: int = 3
    cool_down_seconds: float = 5.0

    def __post_init__(self) -> None:
        try:
            msgspec.convert(self._plain(), _PolicySpec)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(f"bad fallback policy: {exc}") from None
        unknown = sorted(set(self.provisional_commands) - set(COMMAND_NAMES))
        if unknown:
            raise InvalidInputError(f"bad fallback policy: unknown commands {unknown}; known: {list(COMMAND_NAMES)}")

    def _plain(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "max_provisional_per_member": self.max_provisional_per_member,
            "retry_after_seconds": self.retry_after_seconds,
            "provisional_commands": list(self.provisional_commands),
            "trip_after_failures": self.trip_after_failures,
            "cool_down_seconds": self.cool_down_seconds,
        }

    @property
    def retry_after(self) -> timedelta:
        return timedelta(seconds=self.retry_after_seconds)

    def as_dict(self) -> dict[str, Any]:
        return self._plain()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "fallback policy") -> FallbackPolicy:
        """From plain data (e.g. a TOML table); ``RuleFileError`` names the offending key."""
        spec = convert(dict(data), _PolicySpec, source, "fallback")
        unknown = sorted(set(spec.provisional_commands) - set(COMMAND_NAMES))
        if unknown:
            raise RuleFileError(source, "fallback.provisional_commands", f"unknown commands {unknown}")
        return cls(**msgspec.structs.asdict(spec))

    @classmethod
    def load(cls, path: str | Path) -> FallbackPolicy:
        """The ``[fallback]`` table of a TOML file (defaults when the file has none)."""
        raw = read_toml(path, extends_key="extends")
        table = raw.get("fallback", {})
        if not isinstance(table, dict):
            raise RuleFileError(path, "fallback", "must be a table")
        return cls.from_dict(table, source=str(path))


class JournalError(DownloadsError):
    """The provisional-grant journal is damaged beyond a torn last line."""


class JournalEntry(msgspec.Struct, kw_only=True):
    """One line of the journal: a provisional grant, or what reconciling one came to.
    ``recorded_at``: the service's clock when the line was written (for a grant, the service
    time it is reconciled at)."""

    op: Literal["grant", "resolve"]
    member_id: str
    request_id: str
    recorded_at: datetime
    command: dict[str, Any] | None = None
    outcome: Outcome | None = None
    result: str = ""
    detail: str = ""


class ProvisionalJournal:
    """Append-only JSON lines, fsynced before a grant is answered, so a grant the client saw
    survives a crash of this process. One journal per service process. A last line torn by a
    crash mid-write is dropped when the journal is opened; damage anywhere else is refused."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], JournalEntry] = {}
        self.resolved: dict[tuple[str, str], JournalEntry] = {}
        self.torn_lines = 0
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # after the last newline: empty, or a line torn by a crash
        if tail:
            self.torn_lines += 1
            with open(self.path, "r+b") as f:
                f.truncate(len(data) - len(tail))
        for number, line in enumerate(lines, start=1):
            try:
                entry = _decode_entry(line)
            except msgspec.DecodeError as exc:
                raise JournalError(f"{self.path}: line {number} is damaged: {exc}") from None
            self._apply(entry)

    def _apply(self, entry: JournalEntry) -> None:
        key = (entry.member_id, entry.request_id)
        if entry.op == "grant":
            if key not in self.resolved:
                self._pending[key] = entry
        else:
            self._pending.pop(key, None)
            self.resolved[key] = entry

    def _write(self, entry: JournalEntry) -> None:
        line = msgspec.json.encode(entry) + b"\n"
        with open(self.path, "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def record(self, command: Command, outcome: Outcome, accepted_at: datetime | None = None) -> None:
        """Journal a provisional grant; ``accepted_at``: the service's clock (default: now)."""
        entry = JournalEntry(
            op="grant",
            member_id=command.member_id,
            request_id=command.request_id,
            recorded_at=accepted_at or datetime.now(UTC),
            command=command.payload(),
            outcome=outcome,
        )
        with self._lock:
            self._write(entry)
            self._apply(entry)

    def resolve(self, entry: JournalEntry, result: str, detail: str = "", outcome: Outcome | None = None) -> None:
        done = JournalEntry(
            op="resolve",
            member_id=entry.member_id,
            request_id=entry.request_id,
            recorded_at=datetime.now(UTC),
            outcome=outcome,
            result=result,
            detail=detail,
        )
        with self._lock:
            self._write(done)
            self._apply(done)

    def find(self, member_id: str, request_id: str) -> JournalEntry | None:
        return self._pending.get((member_id, request_id))

    def pending(self, member_id: str | None = None) -> list[JournalEntry]:
        """Unreconciled grants, oldest first."""
        entries = list(self._pending.values())
        return entries if member_id is None else [e for e in entries if e.member_id == member_id]


@dataclass
class ReconcileReport:
    """What ``reconcile()`` did. ``revoked``: grants the rules deny now (the device must delete
    them); ``complete``: nothing is left pending."""

    confirmed: list[Outcome] = field(default_factory=list)
    revoked: list[Outcome] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # member, request, why
    forgotten: list[tuple[str, str]] = field(default_factory=list)
    pending: int = 0
    complete: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "confirmed": [o.as_dict() for o in self.confirmed],
            "revoked": [o.as_dict() for o in self.revoked],
            "refused": [list(r) for r in self.refused],
            "forgotten": [list(f) for f in self.forgotten],
            "pending": self.pending,
            "complete": self.complete,
        }


@dataclass
class FallbackStats:
    store_failures: int = 0
    short_circuited: int = 0  # commands answered by the fallback without trying the store
    denied: int = 0
    provisional: int = 0
    reconciled: int = 0


class FallbackService:
    """A ``DownloadService`` with an explicit answer for when its store fails."""

    def __init__(
        self,
        service: DownloadService,
        policy: FallbackPolicy | None = None,
        journal: ProvisionalJournal | str | Path | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.policy = policy or FallbackPolicy()
        if journal is not None and not isinstance(journal, ProvisionalJournal):
            journal = ProvisionalJournal(journal)
        if self.policy.mode == GRANT_PROVISIONALLY and journal is None:
            raise InvalidInputError("granting provisionally needs a journal to record the grants in")
        self.journal: ProvisionalJournal | None = journal
        self.clock = clock
        self.stats = FallbackStats()
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command) -> Outcome:
        if not isinstance(command, Command):
            raise InvalidCommandError(f"expected a command, not {type(command).__name__}")
        entry = self.journal.find(command.member_id, command.request_id) if self.journal else None
        if entry is not None and entry.command is not None:
            check_same_request(command, *fields_of_payload(entry.command))
        if self._circuit_open():
            self.stats.short_circuited += 1
            return self._fallback(command, entry)
        try:
            outcome = self._settle(entry) if entry is not None else self.service.handle(command)
        except StoreUnavailableError:
            self._store_failed()
            return self._fallback(command, entry)
        self._store_answered()
        return outcome

    def reconcile(self) -> ReconcileReport:
        """Replay every journalled grant through the real service, oldest first. Stops at the
        first store failure (the rest stay pending for the next call)."""
        report = ReconcileReport()
        if self.journal is None:
            return report
        for entry in self.journal.pending():
            try:
                self._settle(entry, report)
            except StoreUnavailableError:
                self._store_failed()
                report.complete = False
                break
            except ConcurrencyError:
                continue  # the member is busy; it stays pending for the next call
            except (CommandRefusedError, InvalidCommandError, RequestForgottenError):
                pass  # settled, and already in the report
            self._store_answered()
        report.pending = len(self.journal.pending())
        report.complete = report.complete and report.pending == 0
        return report

    @property
    def circuit_open(self) -> bool:
        with self._lock:
            return self._open_until is not None and self.clock() < self._open_until

    # -- reconciling one grant -----------------------------------------------------------

    def _settle(self, entry: JournalEntry, report: ReconcileReport | None = None) -> Outcome:
        assert self.journal is not None and entry.command is not None and entry.outcome is not None
        command = command_from_payload(entry.command)
        try:
            outcome = self.service.handle(command, accepted_at=entry.recorded_at)
        except (CommandRefusedError, InvalidCommandError) as exc:
            self.journal.resolve(entry, REFUSED, str(exc))
            self.stats.reconciled += 1
            if report is not None:
                report.refused.append((entry.member_id, entry.request_id, str(exc)))
            raise
        except RequestForgottenError as exc:  # landed long ago; its outcome is beyond recall
            self.journal.resolve(entry, FORGOTTEN, str(exc))
            self.stats.reconciled += 1
            if report is not None:
                report.forgotten.append((entry.member_id, entry.request_id))
            raise
        result = CONFIRMED if outcome.granted else REVOKED
        self.journal.resolve(entry, result, outcome.reason, outcome)
        self.stats.reconciled += 1
        if report is not None:
            (report.confirmed if outcome.granted else report.revoked).append(outcome)
        return outcome

    # -- the fallback --------------------------------------------------------------------

    def _fallback(self, command: Command, entry: JournalEntry | None) -> Outcome:
        if entry is not None and entry.outcome is not None:
            return entry.outcome  # a retry while the store is still out: the same answer
        now = self.service.now()
        check_skew(command, now, self.service.rules.clock)  # the client's clock is no more trusted here
        p = self.policy
        if p.mode == GRANT_PROVISIONALLY and command.name in p.provisional_commands and self.journal is not None:
            held = len(self.journal.pending(command.member_id))
            if held >= p.max_provisional_per_member:
                return self._deny(command, now, f"and this account has {held} unconfirmed downloads already")
            outcome = self._provisional(command)
            try:
                self.journal.record(command, outcome, now)
            except OSError:  # a grant that cannot be recorded cannot be reconciled: deny it
                return self._deny(command, now, "and grants cannot be recorded")
            self.stats.provisional += 1
            return outcome
        return self._deny(command, now)

    def _provisional(self, command: Command) -> Outcome:
        license_id: str | None = getattr(command, "license_id", None)
        if isinstance(command, AcquireLicense):
            license_id = license_id_for(command.member_id, command.request_id)  # the id the service would give
        reason = (
            "granted provisionally: the licence records cannot be reached right now, "
            "so this download will be checked against the rules when they can"
        )
        return _answered(command, Answer(True, reason, license_id=license_id), FALLBACK_PROVISIONAL)

    def _deny(self, command: Command, now: datetime, more: str = "") -> Outcome:
        self.stats.denied += 1
        retry_at = now + self.policy.retry_after  # service time: the client's clock sets no date
        why = f" {more}" if more else ""
        reason = f"the licence records cannot be reached right now{why}; try again after {_policy.when(retry_at)}"
        return _answered(command, Answer(False, reason, STORE_UNAVAILABLE, retry_at=retry_at), FALLBACK_DENY)

    # -- the circuit breaker -------------------------------------------------------------

    def _circuit_open(self) -> bool:
        with self._lock:
            if self._open_until is None:
                return False
            if self.clock() < self._open_until:
                return True
            self._open_until = None  # cooled down: this command probes the store
            self._probing = True
            return False

    def _store_failed(self) -> None:
        with self._lock:
            self.stats.store_failures += 1
            self._failures += 1
            trip = self.policy.trip_after_failures
            if trip and (self._probing or self._failures >= trip):
                self._open_until = self.clock() + self.policy.cool_down_seconds
            self._probing = False

    def _store_answered(self) -> None:
        with self._lock:
            self._failures = 0
            self._probing = False


def _answered(command: Command, answer: Answer, fallback: str) -> Outcome:
    return Outcome(
        command=command.name, member_id=command.member_id, request_id=command.request_id, at=command.at,
        answer=answer, fallback=fallback,
    )


def _decode_entry(line: bytes) -> JournalEntry:
    """A journal line. Lines written before an ``Outcome`` wrapped its ``Answer`` held the
    answer's fields flat in the outcome: they are regrouped, so grants pending across an
    upgrade are still reconciled."""
    raw = msgspec.json.decode(line)
    outcome = raw.get("outcome") if isinstance(raw, dict) else None
    if isinstance(outcome, dict) and "answer" not in outcome:
        granted = outcome.pop("granted", False)
        rest = [outcome.pop(name, None) for name in Answer.__struct_fields__[1:]]
        outcome["answer"] = [granted, rest[0] or "", *rest[1:]]
        outcome.pop("provisional", None)
    return msgspec.convert(raw, JournalEntry)


__all__ = [
    "CONFIRMED",
    "DENY",
    "FORGOTTEN",
    "GRANT_PROVISIONALLY",
    "MODES",
    "REFUSED",
    "REVOKED",
    "STORE_UNAVAILABLE",
    "FallbackPolicy",
    "FallbackService",
    "FallbackStats",
    "JournalEntry",
    "JournalError",
    "ProvisionalJournal",
    "ReconcileReport",
]
