"""The Aggregate Service: load the member, check the rules, record events, save — once per
command, atomically, idempotently.

* A request id seen before returns its first outcome and writes nothing: the member remembers
  its latest request outcomes, and event ids derive from the request id, so a retry that races
  the first attempt is absorbed by the store (``AppendResult.duplicate``).
* A ``ConcurrencyError`` (another writer moved the member on) reloads and decides again, a
  bounded number of times.
* Store failures propagate as they are. All store access goes through ``_load`` / ``_save``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from es_core import (
    AppendResult,
    ConcurrencyError,
    DuplicateEventIdError,
    EventRegistry,
    EventStore,
    Repository,
    SnapshotPolicy,
)

from .catalogue import Catalogue, load_catalogue
from .commands import Command, ExpireTitleLicenses, ForgetMember
from .errors import CommandRefusedError, InvalidCommandError, RequestForgottenError
from .events import new_registry
from .member import MemberAccount, RequestRecord, Verdict, describe_grant
from .rules import RuleSet, load_rules

DEFAULT_SNAPSHOTS = SnapshotPolicy(every=50, keep=2)


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a command came to. ``events`` is how many events this call wrote (0 for a retry
    and for a command with nothing to do); ``duplicate`` marks a retry of a known request."""

    command: str
    member_id: str
    request_id: str
    at: datetime
    granted: bool
    reason: str = ""
    rule: str | None = None
    limit: int | None = None
    retry_at: datetime | None = None
    license_id: str | None = None
    remaining: int | None = None
    events: int = 0
    duplicate: bool = False

    @property
    def status(self) -> str:
        return "granted" if self.granted else "denied"

    def as_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


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
    ) -> None:
        self.rules = rules or load_rules()
        self.catalogue = catalogue or load_catalogue()
        self.rules.check_against(self.catalogue)
        self.store = store
        self.registry = registry or new_registry()
        self.repository: Repository[MemberAccount] = Repository(
            store, self.registry, MemberAccount, snapshot_policy, cache_size=cache_size
        )
        self.max_attempts = max_attempts

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command) -> Outcome:
        """Decide and record one command; raises ``InvalidCommandError`` or a
        ``CommandRefusedError`` (nothing written) when the command cannot apply."""
        if not isinstance(command, Command):
            raise InvalidCommandError(f"expected a command, not {type(command).__name__}")
        for attempt in range(1, self.max_attempts + 1):
            member, decided = self._decide(command)
            if isinstance(decided, Outcome):
                return decided
            verdict = decided
            if not member.pending:
                return _outcome(command, verdict, 0)
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
            return _outcome(command, verdict, result.count)
        raise AssertionError("unreachable")  # pragma: no cover

    def withdraw_title(self, title_id: str, at: datetime, request_id: str, holders: Iterable[str]) -> list[Outcome]:
        """A title leaves the catalogue: end its licences at every member that holds one.
        ``holders`` comes from a read model (``ActiveLicenses.holders``); a member missed
        here is caught up by their next command anyway."""
        return [
            self.handle(ExpireTitleLicenses(member_id=m, at=at, request_id=f"{request_id}.{m}", title_id=title_id))
            for m in holders
        ]

    def forget_member(self, member_id: str, at: datetime, request_id: str) -> Outcome:
        """Forget a member: release their licences and record ``MemberForgotten`` (so read
        models drop their rows), then destroy their data key, so the personal fields of every
        event and snapshot of theirs read as ``es_core.FORGOTTEN`` and new ones are refused.

        In that order, so that a crash in between is finished by sending the same request
        again (it is answered from the member's memory and the key is destroyed then). Before
        the key goes, the member's state (which no longer holds personal data) is snapshotted
        unsealed: their sealed snapshots become unreadable, and retention may have removed the
        events before them. A member who never wrote personal data still gets a destroyed key
        (a tombstone), so nothing personal of theirs can be written later. On a store without
        ``protect`` only the event is recorded."""
        outcome = self.handle(ForgetMember(member_id=member_id, at=at, request_id=request_id))
        keys = self.store.key_store
        if keys is not None and keys.status(member_id) != "forgotten":
            member = self.repository.load(member_id)
            if member.state.forgotten:
                self.repository.save_snapshot(member, sealed=False)
            keys.cipher(member_id, create=True)  # a tombstone needs a key to destroy
            self.store.forget(member_id)
        self.repository.forget(member_id)  # no cached state of theirs survives
        return outcome

    def _decide(self, command: Command) -> tuple[MemberAccount, Outcome | Verdict]:
        """Load the member and decide ``command`` on it: the remembered outcome of a known
        request, or a new verdict (events pending on the member). A cached member may be stale:
        a save would catch that by a conflict, but a refusal or a decision recording nothing is
        never saved, so a retry of a request another server handled would be refused ("holds no
        licence") instead of getting its first answer. Those are decided once more on the
        store's member."""
        for fresh in (False, True):
            hits = self.repository.stats.cache_hits
            member = self._load(command.member_id)
            stale_possible = not fresh and self.repository.stats.cache_hits > hits
            known = member.remembered(command.request_id)
            if known is not None:
                return member, _from_record(command, known)
            try:
                verdict = member.execute(command, self.rules, self.catalogue)
            except CommandRefusedError:
                if not stale_possible:
                    raise
                self.repository.forget(command.member_id)
                continue
            if member.pending or not stale_possible:
                return member, verdict
            self.repository.forget(command.member_id)
        raise AssertionError("unreachable")  # pragma: no cover - the fresh pass returns or raises

    # -- reading -------------------------------------------------------------------------

    def member(
        self, member_id: str, *, at_version: int | None = None, as_of: datetime | None = None
    ) -> MemberAccount:
        """The member now, after ``at_version`` events, or as recorded by ``as_of``."""
        return self.repository.load(member_id, at_version=at_version, as_of=as_of)

    # -- the one place the store is touched ----------------------------------------------

    def _load(self, member_id: str) -> MemberAccount:
        return self.repository.load(member_id)

    def _save(self, member: MemberAccount, command: Command) -> AppendResult:
        return self.repository.save(member, request_id=command.request_id, metadata={"command": command.payload()})

    def _replayed(self, command: Command) -> Outcome:
        """The store already holds this request's events (a racing retry): answer from them."""
        self.repository.forget(command.member_id)
        known = self._load(command.member_id).remembered(command.request_id)
        if known is None:
            raise RequestForgottenError(
                f"request {command.request_id} of member {command.member_id} was handled too long ago "
                "to recall its outcome"
            )
        return _from_record(command, known)


def _outcome(command: Command, verdict: Verdict, events: int) -> Outcome:
    return Outcome(
        command=command.name,
        member_id=command.member_id,
        request_id=command.request_id,
        at=command.at,
        granted=verdict.granted,
        reason=verdict.reason,
        rule=verdict.rule,
        limit=verdict.limit,
        retry_at=verdict.retry_at,
        license_id=verdict.license_id,
        remaining=verdict.remaining,
        events=events,
    )


def _from_record(command: Command, record: RequestRecord) -> Outcome:
    reason = record.reason
    if not reason and record.granted:  # remembered before grants kept their reason text
        reason = describe_grant(record.remaining, record.resets_at)
    return Outcome(
        command=command.name,
        member_id=command.member_id,
        request_id=command.request_id,
        at=command.at,
        granted=record.granted,
        reason=reason,
        rule=record.rule,
        limit=record.limit,
        retry_at=record.retry_at,
        license_id=record.license_id,
        remaining=record.remaining,
        events=0,
        duplicate=True,
    )
