"""MemberAccount: the consistency boundary, one stream per member (``member-<id>``).

A download decision reads the member's plan, the devices holding downloads, the studio's
active count and the title's yearly count, and must see all of them at once: two racing
downloads on two devices must not both take the last device slot. es_core appends are atomic
per stream (Cassandra's conditional batches per partition), and Netflix partitioned by member,
so the member is the aggregate root and Netflix's *License* and *Downloaded* aggregates are
entities inside it (``licence.py``, ``downloaded.py``), each event naming its licence or title.

Before every command, the catalogue catches up: licences of titles that left the catalogue
since the last command are expired, each stamped with the moment the title left.

Commands are decided at ``now``, the service's clock (see ``clock.py``): the command's own time
is checked against the rules' clock bounds, and every window runs on service time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

import msgspec

from es_core import Aggregate, applies

from . import clock, policy
from .answers import Answer
from .catalogue import Catalogue, Title
from .commands import (
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    Command,
    ExpireTitleLicenses,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    Subscribe,
)
from .downloaded import Downloaded, DownloadedState
from .errors import (
    CommandRefusedError,
    InvalidCommandError,
    LicenseNotHeldError,
    NotSubscribedError,
    UnknownDeviceError,
)
from .events import (
    DeviceRegistered,
    DeviceRemoved,
    DownloadDenied,
    LicenseAcquired,
    LicenseExpired,
    LicensePlayed,
    LicenseReleased,
    LicenseRenewed,
    MembershipCancelled,
    MemberSubscribed,
    PlanChanged,
)
from .license import License, LicenseState
from .requests import REQUEST_MEMORY, RememberedRequest
from .rules import RuleSet


class Device(msgspec.Struct, kw_only=True, gc=False):
    registered_at: datetime
    kind: str = ""
    held: int = 0  # licences held on this device


class MemberState(msgspec.Struct, kw_only=True, gc=False):
    plan: str | None = None  # None: not a member (never joined, or cancelled)
    member_since: datetime | None = None
    devices: dict[str, Device] = {}
    # held licences, in acquisition order; stored under the name older snapshots use
    licenses: dict[str, LicenseState] = msgspec.field(default_factory=dict, name="licences")
    titles: dict[str, DownloadedState] = {}
    studio_active: dict[str, int] = {}
    requests: dict[str, RememberedRequest] = {}  # oldest first, at most REQUEST_MEMORY
    latest_at: datetime | None = None  # the latest business time of the member's decisions
    grants: int = 0
    denials: int = 0


def license_id_for(member_id: str, request_id: str) -> str:
    """Licence ids derive from the request, so a retry (or a what-if replay) names the same licence."""
    digest = hashlib.blake2b(f"{member_id}\x1f{request_id}".encode(), digest_size=8, person=b"licence")
    return "lic-" + digest.hexdigest()


def describe_grant(remaining: int | None, resets_at: datetime | None, expires_at: datetime | None = None) -> str:
    parts = [f"licence valid until {policy.when(expires_at)}"] if expires_at else []
    if remaining is not None and resets_at is not None:
        if remaining <= 0:
            parts.append(f"this was the last download of this title until {policy.when(resets_at)}")
        else:
            more = "1 more time" if remaining == 1 else f"{remaining} more times"
            parts.append(f"can be downloaded {more} before {policy.when(resets_at)}")
    return "granted" + (": " + "; ".join(parts) if parts else "")


# What a granted command tells the member, built from the event it records: the command handler
# and the applier (which remembers the outcome for retries) call the same function, so a retry
# gets the first answer's text word for word.


def _subscribed_reason(e: MemberSubscribed) -> str:
    return f"subscribed on the {e.plan} plan"


def _plan_changed_reason(e: PlanChanged) -> str:
    holding, limit = e.devices_holding_downloads, e.device_limit
    over = f"; {holding} devices hold downloads, over the new limit of {limit}" if holding > limit else ""
    return f"plan changed from {e.old_plan} to {e.new_plan}{over}"


def _cancelled_reason(e: MembershipCancelled) -> str:
    return "membership cancelled; downloads deleted"


def _registered_reason(e: DeviceRegistered) -> str:
    return f"device {e.device_id} registered"


def _removed_reason(e: DeviceRemoved) -> str:
    return f"device {e.device_id} removed; its downloads deleted"


def _granted_reason(e: LicenseAcquired | LicenseRenewed) -> str:
    return describe_grant(e.remaining, e.resets_at, e.expires_at)


def _played_reason(e: LicensePlayed) -> str:
    return f"playing; licence valid until {policy.when(e.expires_at)}"


def _released_reason(e: LicenseReleased) -> str:
    # a cancellation or device removal releases licences first, then remembers its own event
    return "download deleted; licence released"


class MemberAccount(Aggregate[MemberState]):
    """One member's account: the aggregate root that decides every command for the member and
    holds their License and Downloaded entities. Stream ``member-<id>``."""

    aggregate_type = "member"
    State = MemberState
    # 2: remembered requests became (command, fields, answer); latest_at; histories in service time
    state_schema_version = 2

    # -- queries -------------------------------------------------------------------------

    @property
    def member_id(self) -> str:
        return self.id

    def license(self, license_id: str) -> License | None:
        state = self.state.licenses.get(license_id)
        return License(state) if state is not None else None

    def downloaded(self, title_id: str) -> Downloaded | None:
        state = self.state.titles.get(title_id)
        return Downloaded(state) if state is not None else None

    def devices_holding_downloads(self) -> list[str]:
        return [d for d, device in self.state.devices.items() if device.held]

    def remembered(self, request_id: str) -> RememberedRequest | None:
        return self.state.requests.get(request_id)

    # -- commands ------------------------------------------------------------------------

    def execute(
        self, command: Command, rules: RuleSet, catalogue: Catalogue, now: datetime, *, check_lateness: bool = True
    ) -> Answer:
        """Decide ``command`` at service time ``now``: record events, return the answer.
        Raises a ``CommandRefusedError`` / ``InvalidCommandError`` (the caller then saves
        nothing), ``ClockSkewError`` / ``LateRequestError`` among them. ``check_lateness=False``
        for a request the service accepted at ``now`` and decides only later (a reconciled
        provisional grant): the member's later decisions do not make it late."""
        handler = _HANDLERS.get(type(command))
        if handler is None:
            raise InvalidCommandError(f"MemberAccount does not handle {type(command).__name__}")
        if command.from_device:
            clock.check_skew(command, now, rules.clock)
            if check_lateness:
                # a licence may not be dated before the membership; other commands need only be on time
                since = self.state.member_since if isinstance(command, AcquireLicense | RenewLicense) else None
                clock.check_lateness(command, self.state.latest_at, since, rules.clock)
        else:  # the service's own operation: its time is the catalogue's, and may run ahead
            now = max(now, command.at)
        self.catch_up(now, catalogue)
        return handler(self, command, rules, catalogue, now)

    def catch_up(self, now: datetime, catalogue: Catalogue) -> None:
        """Expire the licences of titles that have left the catalogue by ``now``."""
        for state in list(self.state.licenses.values()):
            title = catalogue.title(state.title_id)
            if title is not None and title.leaving_on is not None and title.left_by(now):
                self.record(License(state).expire(title.leaving_on))

    def subscribe(self, cmd: Subscribe, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        rules.device_limit(cmd.plan)  # an unknown plan is refused
        if self.state.plan is not None:
            raise CommandRefusedError(f"member {self.id} is already subscribed on the {self.state.plan} plan")
        subscribed = MemberSubscribed(plan=cmd.plan, at=cmd.at, request_id=cmd.request_id)
        self.record(subscribed)
        return Answer(True, _subscribed_reason(subscribed))

    def change_plan(self, cmd: ChangePlan, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        limit = rules.device_limit(cmd.plan)
        old = self._member_plan()
        if old == cmd.plan:
            return Answer(True, f"already on the {cmd.plan} plan")
        changed = PlanChanged(
            old_plan=old,
            new_plan=cmd.plan,
            device_limit=limit,
            devices_holding_downloads=len(self.devices_holding_downloads()),
            at=cmd.at,
            request_id=cmd.request_id,
        )
        self.record(changed)
        return Answer(True, _plan_changed_reason(changed))

    def cancel(self, cmd: CancelMembership, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        self._member_plan()
        for state in list(self.state.licenses.values()):
            self.record(License(state).release(cmd.at, "membership_cancelled", cmd.request_id))
        cancelled = MembershipCancelled(at=cmd.at, request_id=cmd.request_id)
        self.record(cancelled)
        return Answer(True, _cancelled_reason(cancelled))

    def register_device(self, cmd: RegisterDevice, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        self._member_plan()
        if cmd.device_id in self.state.devices:
            raise CommandRefusedError(f"device {cmd.device_id} is already registered to member {self.id}")
        registered = DeviceRegistered(device_id=cmd.device_id, kind=cmd.kind, at=cmd.at, request_id=cmd.request_id)
        self.record(registered)
        return Answer(True, _registered_reason(registered))

    def remove_device(self, cmd: RemoveDevice, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        self._device(cmd.device_id)
        for state in list(self.state.licenses.values()):
            if state.device_id == cmd.device_id:
                self.record(License(state).release(cmd.at, "device_removed", cmd.request_id))
        removed = DeviceRemoved(device_id=cmd.device_id, at=cmd.at, request_id=cmd.request_id)
        self.record(removed)
        return Answer(True, _removed_reason(removed))

    def acquire(self, cmd: AcquireLicense, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        self._member_plan()
        self._device(cmd.device_id)
        title = _title(catalogue, cmd.title_id)
        studio = catalogue.studio(title.studio_id)
        downloaded = self.downloaded(title.id)
        studio_name = studio.name if studio else title.studio_id
        denial = (
            policy.check_catalogue(title, cmd.at, now)
            or policy.check_devices(self.state, cmd.device_id, rules)
            or policy.check_device_capacity(self.state, cmd.device_id, rules)
            or policy.check_studio_cap(self.state, title, studio_name, rules)
            or policy.check_studio_year(self.state, title, studio_name, now, rules)
            or policy.check_title_year(downloaded, title, now, rules)
        )
        if denial is not None:
            return self._deny("acquire", cmd, now, rules, denial, title, cmd.device_id, None)
        license_id = license_id_for(self.id, cmd.request_id)
        remaining, resets_at = policy.remaining_after(downloaded, title, now, rules)
        acquired = License.acquire(
            license_id=license_id,
            device_id=cmd.device_id,
            title_id=title.id,
            studio_id=title.studio_id,
            at=cmd.at,
            decided_at=now,
            rules=rules,
            remaining=remaining,
            resets_at=resets_at,
            request_id=cmd.request_id,
        )
        self.record(acquired)
        return _grant_answer(acquired)

    def renew(self, cmd: RenewLicense, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        self._member_plan()
        license = self._held(cmd.license_id)
        title = _title(catalogue, license.state.title_id)
        downloaded = self.downloaded(title.id)
        denial = policy.check_catalogue(title, cmd.at, now)
        if denial is None and rules.renewal_counts:
            studio = catalogue.studio(title.studio_id)
            denial = policy.check_studio_year(
                self.state, title, studio.name if studio else title.studio_id, now, rules
            ) or policy.check_title_year(downloaded, title, now, rules)
        if denial is not None:
            return self._deny("renew", cmd, now, rules, denial, title, license.state.device_id, cmd.license_id)
        remaining, resets_at = policy.remaining_after(downloaded, title, now, rules, renewal=True)
        renewed = license.renew(cmd.at, now, rules, remaining, resets_at, cmd.request_id)
        self.record(renewed)
        return _grant_answer(renewed)

    def play(self, cmd: PlayDownload, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        license = self._held(cmd.license_id)
        if not license.playable(now):
            raise CommandRefusedError(
                f"licence {cmd.license_id} expired at {policy.when(license.state.expires_at)}; renew it to play"
            )
        played = license.play(cmd.at, now, rules, cmd.request_id)
        if played is None:
            return Answer(True, "playing", license_id=cmd.license_id)
        self.record(played)
        return Answer(True, _played_reason(played), license_id=played.license_id)

    def release(self, cmd: ReleaseLicense, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        license = self._held(cmd.license_id)
        released = license.release(cmd.at, "deleted", cmd.request_id)
        self.record(released)
        return Answer(True, _released_reason(released), license_id=cmd.license_id)

    def expire_title(self, cmd: ExpireTitleLicenses, rules: RuleSet, catalogue: Catalogue, now: datetime) -> Answer:
        title = _title(catalogue, cmd.title_id)
        if not title.left_by(now):
            raise InvalidCommandError(
                f"title {title.id} has not left the catalogue by {policy.when(now)}; set its leaving_on first"
            )
        return Answer(True, f"'{title.name}' left the catalogue; its licences are expired")

    # -- helpers -------------------------------------------------------------------------

    def _member_plan(self) -> str:
        if self.state.plan is None:
            raise NotSubscribedError(f"member {self.id} has no active membership")
        return self.state.plan

    def _device(self, device_id: str) -> Device:
        device = self.state.devices.get(device_id)
        if device is None:
            raise UnknownDeviceError(f"device {device_id} is not registered to member {self.id}")
        return device

    def _held(self, license_id: str) -> License:
        license = self.license(license_id)
        if license is None:
            raise LicenseNotHeldError(f"member {self.id} holds no licence {license_id}")
        return license

    def _deny(
        self,
        action: str,
        cmd: Command,
        now: datetime,
        rules: RuleSet,
        denial: Answer,
        title: Title,
        device_id: str,
        license_id: str | None,
    ) -> Answer:
        event = DownloadDenied(
            action=action,
            rule=denial.rule or "",
            limit=denial.limit,
            retry_at=denial.retry_at,
            reason=denial.reason,
            device_id=device_id,
            title_id=title.id,
            studio_id=title.studio_id,
            license_id=license_id,
            at=cmd.at,
            decided_at=now,
            rules=rules.name,
            rules_digest=rules.digest,
            request_id=cmd.request_id,
        )
        self.record(event)
        return _denial_answer(event)

    # -- evolution -----------------------------------------------------------------------

    def _remember(self, request_id: str, command: str, fields: dict[str, str], answer: Answer, at: datetime) -> None:
        """Remember a decided request's answer for retries, and its time for the lateness bound."""
        if not request_id:
            return
        s = self.state
        if s.latest_at is None or at > s.latest_at:
            s.latest_at = at
        requests = s.requests
        requests[request_id] = RememberedRequest(command, fields, answer)
        if len(requests) > REQUEST_MEMORY:
            del requests[next(iter(requests))]

    @applies(MemberSubscribed)
    def _subscribed(self, e: MemberSubscribed) -> None:
        self.state.plan = e.plan
        self.state.member_since = e.at
        self._remember(e.request_id, "Subscribe", {"plan": e.plan}, Answer(True, _subscribed_reason(e)), e.at)

    @applies(PlanChanged)
    def _plan_changed(self, e: PlanChanged) -> None:
        self.state.plan = e.new_plan
        self._remember(e.request_id, "ChangePlan", {"plan": e.new_plan}, Answer(True, _plan_changed_reason(e)), e.at)

    @applies(MembershipCancelled)
    def _cancelled(self, e: MembershipCancelled) -> None:
        self.state.plan = None
        self.state.member_since = None
        self._remember(e.request_id, "CancelMembership", {}, Answer(True, _cancelled_reason(e)), e.at)

    @applies(DeviceRegistered)
    def _device_registered(self, e: DeviceRegistered) -> None:
        self.state.devices[e.device_id] = Device(registered_at=e.at, kind=e.kind)
        fields = {"device_id": e.device_id, "kind": e.kind}
        self._remember(e.request_id, "RegisterDevice", fields, Answer(True, _registered_reason(e)), e.at)

    @applies(DeviceRemoved)
    def _device_removed(self, e: DeviceRemoved) -> None:
        self.state.devices.pop(e.device_id, None)
        fields = {"device_id": e.device_id}
        self._remember(e.request_id, "RemoveDevice", fields, Answer(True, _removed_reason(e)), e.at)

    @applies(LicenseAcquired)
    def _acquired(self, e: LicenseAcquired) -> None:
        s = self.state
        s.licenses[e.license_id] = License.started(e)
        device = s.devices.get(e.device_id)
        if device is not None:
            device.held += 1
        s.studio_active[e.studio_id] = s.studio_active.get(e.studio_id, 0) + 1
        self._title(e.title_id, e.studio_id).downloaded(e.decided_at, renewal=False)
        s.grants += 1
        fields = {"device_id": e.device_id, "title_id": e.title_id}
        self._remember(e.request_id, "AcquireLicense", fields, _grant_answer(e), e.at)

    @applies(LicenseRenewed)
    def _renewed(self, e: LicenseRenewed) -> None:
        state = self.state.licenses.get(e.license_id)
        if state is not None:
            License(state).renewed(e)
            self._title(e.title_id, state.studio_id).downloaded(e.decided_at, renewal=True)
        self.state.grants += 1
        self._remember(e.request_id, "RenewLicense", {"license_id": e.license_id}, _grant_answer(e), e.at)

    @applies(LicensePlayed)
    def _played(self, e: LicensePlayed) -> None:
        state = self.state.licenses.get(e.license_id)
        if state is not None:
            License(state).played(e)
        answer = Answer(True, _played_reason(e), license_id=e.license_id)
        self._remember(e.request_id, "PlayDownload", {"license_id": e.license_id}, answer, e.at)

    @applies(LicenseExpired)
    def _expired(self, e: LicenseExpired) -> None:
        self._end(e.license_id)

    @applies(LicenseReleased)
    def _released(self, e: LicenseReleased) -> None:
        self._end(e.license_id)
        answer = Answer(True, _released_reason(e), license_id=e.license_id)
        self._remember(e.request_id, "ReleaseLicense", {"license_id": e.license_id}, answer, e.at)

    def _end(self, license_id: str) -> None:
        """A licence stops holding its device slot and its studio count."""
        s = self.state
        state = s.licenses.pop(license_id, None)
        if state is None:
            return
        device = s.devices.get(state.device_id)
        if device is not None and device.held:
            device.held -= 1
        active = s.studio_active.get(state.studio_id, 0) - 1
        if active > 0:
            s.studio_active[state.studio_id] = active
        else:
            s.studio_active.pop(state.studio_id, None)

    def _title(self, title_id: str, studio_id: str) -> Downloaded:
        titles = self.state.titles
        state = titles.get(title_id)
        if state is None:
            state = titles[title_id] = Downloaded.empty(title_id, studio_id)
        return Downloaded(state)

    @applies(DownloadDenied)
    def _denied(self, e: DownloadDenied) -> None:
        self.state.denials += 1  # and nothing else: a denied attempt never counts toward a limit
        if e.action == "renew":
            command, fields = "RenewLicense", {"license_id": e.license_id or ""}
        else:
            command, fields = "AcquireLicense", {"device_id": e.device_id, "title_id": e.title_id}
        self._remember(e.request_id, command, fields, _denial_answer(e), e.at)


def _grant_answer(e: LicenseAcquired | LicenseRenewed) -> Answer:
    return Answer(
        True, _granted_reason(e), license_id=e.license_id, remaining=e.remaining, resets_at=e.resets_at
    )


def _denial_answer(e: DownloadDenied) -> Answer:
    return Answer(False, e.reason, e.rule, e.limit, e.retry_at, e.license_id)


def _title(catalogue: Catalogue, title_id: str) -> Title:
    title = catalogue.title(title_id)
    if title is None:
        raise InvalidCommandError(f"no title {title_id!r} in the catalogue")
    return title


# (member, command, rules, catalogue, now) -> answer; each handler takes its own command type,
# which the table pairs it with, so the arguments are not checked here
_Handler = Callable[..., Answer]
_HANDLERS: dict[type[Command], _Handler] = {
    Subscribe: MemberAccount.subscribe,
    ChangePlan: MemberAccount.change_plan,
    CancelMembership: MemberAccount.cancel,
    RegisterDevice: MemberAccount.register_device,
    RemoveDevice: MemberAccount.remove_device,
    AcquireLicense: MemberAccount.acquire,
    RenewLicense: MemberAccount.renew,
    PlayDownload: MemberAccount.play,
    ReleaseLicense: MemberAccount.release,
    ExpireTitleLicenses: MemberAccount.expire_title,
}
