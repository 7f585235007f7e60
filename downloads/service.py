"""The Aggregate Service: load the member, check the rules, record events, save — once per
command, atomically, idempotently.

* Idempotency lives here, in one place (with ``requests.py``): a request id the member
  remembers is a retry, answered with its first answer and nothing written, or a reuse of the
  key for another request, refused with ``RequestReusedError``. A request id the member no
  longer remembers but the store holds (its derived event ids collide, or the store's log of
  the member names it) is refused with ``RequestForgottenError``, never executed twice.
* The service's clock (``clock``; by default the store's) is the time every decision is made
  at; the command's own time is trusted only within the rules' clock bounds (``clock.py``).
* A ``ConcurrencyError`` (another writer moved the member on) reloads and decides again, a
  bounded number of times.
* Store failures propagate as they are. All store access goes through ``_load`` / ``_save`` /
  ``_stored_request``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from es_core import (
    AppendResult,
    ConcurrencyError,
    DuplicateEventIdError,
    EventRegistry,
    EventStore,
    InvalidInputError,
    Repository,
    SnapshotPolicy,
)

from .answers import Answer, Outcome
from .catalogue import Catalogue, load_catalogue
from .commands import Command, ExpireTitleLicenses
from .errors import CommandRefusedError, InvalidCommandError, RequestForgottenError
from .events import new_registry
from .member import MemberAccount
from .requests import RememberedRequest, check_same_request, fields_of_payload, request_fields
from .rules import RuleSet, load_rules
from .time_travel import member_as_it_happened

DEFAULT_SNAPSHOTS = SnapshotPolicy(every=50, keep=2)
RECENT_REQUESTS = 10_000
"""Request ids a service remembers the member of, to refuse one reused for another member
(best effort: within one process, for its latest answered requests)."""

Clock = Callable[[], datetime]


class DownloadService:
    """Handles commands against one store under one rule set and catalogue."""

    def __init__(
        self,
        store: EventStore,
        rules: RuleSet | None = None,
        catalogue: Catalogue | None = None,
        *,
        registry: EventRegistry | None = None,
        snapshot_policy: SnapshotPolicy = DEFAULT_SNAPSHOTS,
        cache_size: int = 0,
        max_attempts: int = 3,
        clock: Clock | None = None,
    ) -> None:
        """``clock``: the service's clock, the authority for every decision's time (an aware
        datetime). By default the store's clock, read at each command, so a simulation or a
        replay that sets the store's clock sets the service's too."""
        self.rules = rules or load_rules()
        self.catalogue = catalogue or load_catalogue()
        self.rules.check_against(self.catalogue)
        self.store = store
        self.registry = registry or new_registry()
        self.repository: Repository[MemberAccount] = Repository(
            store, self.registry, MemberAccount, snapshot_policy, cache_size=cache_size
        )
        self.max_attempts = max_attempts
        self.clock = clock
        self._recent: OrderedDict[str, str] = OrderedDict()  # request id -> member, latest last
        self._recent_lock = threading.Lock()

    def now(self) -> datetime:
        """The service's clock, in UTC."""
        moment = self.clock() if self.clock is not None else self.store.clock()
        if moment.tzinfo is None:
            raise InvalidInputError("the service's clock returned a naive datetime")
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command, *, accepted_at: datetime | None = None) -> Outcome:
        """Decide and record one command; raises ``InvalidCommandError`` or a
        ``CommandRefusedError`` (nothing written) when the command cannot apply.

        ``accepted_at``: for a request the service accepted earlier and decides only now (a
        provisional grant being reconciled): it is decided at that service time, its time
        checked against the skew bound there, and the member's later decisions do not make it
        late."""
        if not isinstance(command, Command):
            raise InvalidCommandError(f"expected a command, not {type(command).__name__}")
        self._check_member_of(command)
        outcome = self._handle(command, accepted_at)
        self._remember_member_of(command)
        return outcome

    def _handle(self, command: Command, accepted_at: datetime | None) -> Outcome:
        for attempt in range(1, self.max_attempts + 1):
            member, decided = self._decide(command, accepted_at)
            if isinstance(decided, Outcome):
                return decided
            try:
                result = self._save(member, command)
            except ConcurrencyError:  # the repository has dropped its cached copy already
                if attempt == self.max_attempts:
                    raise
                continue
            except DuplicateEventIdError:
                return self._replayed(command)
            if result.duplicate:
                return self._replayed(command)
            return _outcome(command, decided, result.count)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_member_of(self, command: Command) -> None:
        """A request id this service answered for another member is refused (best effort:
        request ids are scoped to the member, and only this process's latest are known)."""
        first = self._recent.get(command.request_id)
        if first is not None and first != command.member_id:
            check_same_request(command, command.name, request_fields(command), first)

    def _remember_member_of(self, command: Command) -> None:
        with self._recent_lock:
            self._recent[command.request_id] = command.member_id
            self._recent.move_to_end(command.request_id)
            while len(self._recent) > RECENT_REQUESTS:
                self._recent.popitem(last=False)

    def withdraw_title(self, title_id: str, at: datetime, request_id: str, holders: Iterable[str]) -> list[Outcome]:
        """A title leaves the catalogue: end its licences at every member that holds one.
        ``holders`` comes from a read model (``ActiveLicenses.holders``); a member missed
        here is caught up by their next command anyway."""
        return [
            self.handle(ExpireTitleLicenses(member_id=m, at=at, request_id=f"{request_id}.{m}", title_id=title_id))
            for m in holders
        ]

    def _decide(self, command: Command, accepted_at: datetime | None) -> tuple[MemberAccount, Outcome | Answer]:
        """Load the member and decide ``command`` on it: the first answer to a known request
        (an ``Outcome``), or a new answer with events pending on the member.

        A member from the repository's cache may be stale. A save would catch that by a
        conflict, but a refusal or a decision recording nothing is never saved, so a retry of
        a request another server handled would be refused ("holds no licence") instead of
        getting its first answer: those are decided once more on the store's member. A
        request that still records nothing, or is refused, is asked after in the store: if
        the member handled it too long ago to remember, it is refused as forgotten."""
        for fresh in (False, True):
            member = self._load(command.member_id)
            stale_possible = not fresh and member.loaded_from == "cache"
            known = member.remembered(command.request_id)
            if known is not None:
                return member, _retried(command, known)
            now = accepted_at or self.now()
            try:
                answer = member.execute(
                    command, self.rules, self.catalogue, now, check_lateness=accepted_at is None
                )
            except (CommandRefusedError, InvalidCommandError):
                if stale_possible:
                    self.repository.forget(command.member_id)
                    continue
                self._refuse_if_forgotten(command)
                raise
            if member.pending:
                return member, answer
            if stale_possible:
                self.repository.forget(command.member_id)
                continue
            self._refuse_if_forgotten(command)
            return member, _outcome(command, answer, 0)
        raise AssertionError("unreachable")  # pragma: no cover - the fresh pass returns or raises

    # -- reading -------------------------------------------------------------------------

    def member(
        self,
        member_id: str,
        *,
        at_version: int | None = None,
        known_by: datetime | None = None,
        happened_by: datetime | None = None,
    ) -> MemberAccount:
        """The member now, or in the past, in one of two times:

        * ``known_by``: *as it was known* at a recording time: the events the store had
          recorded by then (what the service itself knew, e.g. for an audit);
        * ``happened_by``: *as it happened* by a business time: every event known now whose
          ``at`` (when the member acted) is at or before it, so a request that arrived late
          counts from when it happened. With ``known_by`` too: as it happened, as known then.

        ``at_version``: after that many events (exact, and cheap with snapshots)."""
        if happened_by is None:
            return self.repository.load(member_id, at_version=at_version, as_of=known_by)
        if at_version is not None:
            raise InvalidInputError("give at_version or happened_by, not both")
        return member_as_it_happened(self.store, self.registry, member_id, happened_by, known_by=known_by)

    # -- the one place the store is touched ----------------------------------------------

    def _load(self, member_id: str) -> MemberAccount:
        return self.repository.load(member_id)

    def _save(self, member: MemberAccount, command: Command) -> AppendResult:
        return self.repository.save(member, request_id=command.request_id, metadata={"command": command.payload()})

    def _stored_request(self, command: Command) -> dict[str, Any] | None:
        """The command payload the store recorded for this request id, if it holds any of its
        events (asked only for a request the member does not remember and that is refused,
        records nothing, or collides with stored event ids)."""
        stream = MemberAccount.stream_id_for(command.member_id)
        for record in self.store.read_stream(stream, reverse=True):
            if record.metadata.get("request_id") == command.request_id:
                payload = record.metadata.get("command")
                return payload if isinstance(payload, dict) else {}
        return None

    def _refuse_if_forgotten(self, command: Command) -> None:
        """A request the store holds but the member forgot: refused, as a retry or a reuse.
        (The service's own catalogue operations are idempotent by themselves: sent again, they
        find nothing left to do.)"""
        if not command.from_device:
            return
        stored = self._stored_request(command)
        if stored is None:
            return
        if stored:  # the recorded command tells a reused key from a retry
            check_same_request(command, *fields_of_payload(stored))
        raise _forgotten(command)

    def _replayed(self, command: Command) -> Outcome:
        """The store already holds this request's events (a racing retry): answer from them."""
        self.repository.forget(command.member_id)
        known = self._load(command.member_id).remembered(command.request_id)
        if known is None:
            self._refuse_if_forgotten(command)
            raise _forgotten(command)
        return _retried(command, known)


def _outcome(command: Command, answer: Answer, events: int) -> Outcome:
    return Outcome(
        command=command.name, member_id=command.member_id, request_id=command.request_id, at=command.at,
        answer=answer, events=events,
    )


def _retried(command: Command, known: RememberedRequest) -> Outcome:
    """The first answer to a request, for a retry of it (``RequestReusedError`` if it is not one)."""
    check_same_request(command, known.command, known.fields)
    return Outcome(
        command=command.name, member_id=command.member_id, request_id=command.request_id, at=command.at,
        answer=known.answer, duplicate=True,
    )


def _forgotten(command: Command) -> RequestForgottenError:
    return RequestForgottenError(
        f"request {command.request_id} of member {command.member_id} was handled too long ago to recall its outcome"
    )
