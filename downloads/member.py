"""MemberAccount: the consistency boundary, one stream per member (``member-<id>``).

A download decision reads the member's plan, the devices holding downloads, the studio's
active count and the title's yearly count, and must see all of them at once: two racing
downloads on two devices must not both take the last device slot. es_core appends are atomic
per stream (Cassandra's conditional batches per partition), and Netflix partitioned by member,
so the member is the aggregate root and Netflix's *License* and *Downloaded* aggregates are
entities inside it (``licence.py``, ``downloaded.py``), each event naming its licence or title.

Before every command, the catalogue catches up: licences of titles that left the catalogue
since the last command are expired, each stamped with the moment the title left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from es_core import Aggregate, applies

from . import policy
from .catalogue import Catalogue, Title
from .commands import (
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    Command,
    ExpireTitleLicenses,
    ForgetMember,
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
    MemberForgottenError,
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
    MemberForgotten,
    MembershipCancelled,
    MemberSubscribed,
    PlanChanged,
)
from .license import License, LicenseState
from .rules import RuleSet

REQUEST_MEMORY = 16
"""Outcomes of the member's latest requests kept for retries (client retries come within
seconds; an older retry is still absorbed by the store through its derived event ids)."""


class Device(msgspec.Struct, kw_only=True, gc=False):
    registered_at: datetime
    kind: str = ""
    held: int = 0  # licences held on this device
    name: str = ""  # personal: snapshots holding it are sealed with the member's key


class RequestRecord(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """The first outcome of a request, returned again to a retry."""

    granted: bool
    license_id: str | None = None
    rule: str | None = None
    limit: int | None = None
    retry_at: datetime | None = None
    remaining: int | None = None
    resets_at: datetime | None = None
    reason: str = ""


class MemberState(msgspec.Struct, kw_only=True, gc=False):
    plan: str | None = None  # None: not a member (never joined, or cancelled)
    member_since: datetime | None = None
    devices: dict[str, Device] = {}
    # held licences, in acquisition order; stored under the name older snapshots use
    licenses: dict[str, LicenseState] = msgspec.field(default_factory=dict, name="licences")
    titles: dict[str, DownloadedState] = {}
    studio_active: dict[str, int] = {}
    requests: dict[str, RequestRecord] = {}  # oldest first, at most REQUEST_MEMORY
    grants: int = 0
    denials: int = 0
    forgotten: bool = False  # MemberForgotten: no more commands


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the member decided: granted or denied (with the rule), and what to tell them."""

    granted: bool
    reason: str = ""
    rule: str | None = None
    limit: int | None = None
    retry_at: datetime | None = None
    license_id: str | None = None
    remaining: int | None = None
    resets_at: datetime | None = None


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


def _forgotten_reason(e: MemberForgotten) -> str:
    return "member forgotten; downloads deleted and personal data shredded"


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
    state_schema_version = 1

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

    def remembered(self, request_id: str) -> RequestRecord | None:
        return self.state.requests.get(request_id)

    # -- commands ------------------------------------------------------------------------

    def execute(self, command: Command, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        """Decide ``command`` at its time: record events, return the verdict. Raises a
        ``CommandRefusedError`` / ``InvalidCommandError`` (the caller then saves nothing)."""
        if self.state.forgotten:
            raise MemberForgottenError(f"member {self.id} is forgotten")
        self.catch_up(command.at, catalogue)
        handler = _HANDLERS.get(type(command))
        if handler is None:
            raise InvalidCommandError(f"MemberAccount does not handle {type(command).__name__}")
        return handler(self, command, rules, catalogue)

    def catch_up(self, at: datetime, catalogue: Catalogue) -> None:
        """Expire the licences of titles that have left the catalogue by ``at``."""
        for state in list(self.state.licenses.values()):
            title = catalogue.title(state.title_id)
            if title is not None and title.left_by(at):
                self.record(License(state).expire(title.leaving_on))  # type: ignore[arg-type]

    def subscribe(self, cmd: Subscribe, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        rules.device_limit(cmd.plan)  # an unknown plan is refused
        if self.state.plan is not None:
            raise CommandRefusedError(f"member {self.id} is already subscribed on the {self.state.plan} plan")
        subscribed = MemberSubscribed(plan=cmd.plan, at=cmd.at, request_id=cmd.request_id)
        self.record(subscribed)
        return Verdict(True, _subscribed_reason(subscribed))

    def change_plan(self, cmd: ChangePlan, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        limit = rules.device_limit(cmd.plan)
        old = self._member_plan()
        if old == cmd.plan:
            return Verdict(True, f"already on the {cmd.plan} plan")
        changed = PlanChanged(
            old_plan=old,
            new_plan=cmd.plan,
            device_limit=limit,
            devices_holding_downloads=len(self.devices_holding_downloads()),
            at=cmd.at,
            request_id=cmd.request_id,
        )
        self.record(changed)
        return Verdict(True, _plan_changed_reason(changed))

    def cancel(self, cmd: CancelMembership, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        self._member_plan()
        for state in list(self.state.licenses.values()):
            self.record(License(state).release(cmd.at, "membership_cancelled", cmd.request_id))
        cancelled = MembershipCancelled(at=cmd.at, request_id=cmd.request_id)
        self.record(cancelled)
        return Verdict(True, _cancelled_reason(cancelled))

    def register_device(self, cmd: RegisterDevice, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        self._member_plan()
        if cmd.device_id in self.state.devices:
            raise CommandRefusedError(f"device {cmd.device_id} is already registered to member {self.id}")
        registered = DeviceRegistered(
            device_id=cmd.device_id, kind=cmd.kind, device_name=cmd.device_name, at=cmd.at, request_id=cmd.request_id
        )
        self.record(registered)
        return Verdict(True, _registered_reason(registered))

    def forget(self, cmd: ForgetMember, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        """Release every licence and record ``MemberForgotten`` (a member who never joined is
        refused). The service then destroys the member's data key."""
        if self.version == 0 and not self.pending:
            raise NotSubscribedError(f"member {self.id} has no account to forget")
        for state in list(self.state.licenses.values()):
            self.record(License(state).release(cmd.at, "member_forgotten", cmd.request_id))
        forgotten = MemberForgotten(at=cmd.at, request_id=cmd.request_id)
        self.record(forgotten)
        return Verdict(True, _forgotten_reason(forgotten))

    def remove_device(self, cmd: RemoveDevice, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        self._device(cmd.device_id)
        for state in list(self.state.licenses.values()):
            if state.device_id == cmd.device_id:
                self.record(License(state).release(cmd.at, "device_removed", cmd.request_id))
        removed = DeviceRemoved(device_id=cmd.device_id, at=cmd.at, request_id=cmd.request_id)
        self.record(removed)
        return Verdict(True, _removed_reason(removed))

    def acquire(self, cmd: AcquireLicense, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        self._member_plan()
        self._device(cmd.device_id)
        title = _title(catalogue, cmd.title_id)
        studio = catalogue.studio(title.studio_id)
        downloaded = self.downloaded(title.id)
        denial = (
            policy.check_catalogue(title, cmd.at)
            or policy.check_devices(self.state, cmd.device_id, rules)
            or policy.check_device_capacity(self.state, cmd.device_id, rules)
            or policy.check_studio_cap(self.state, title, studio.name if studio else title.studio_id, rules)
            or policy.check_title_year(downloaded, title, cmd.at, rules)
        )
        if denial is not None:
            return self._deny("acquire", cmd, denial, title, cmd.device_id, None)
        license_id = license_id_for(self.id, cmd.request_id)
        remaining, resets_at = policy.remaining_after(downloaded, title, cmd.at, rules)
        acquired = License.acquire(
            license_id=license_id,
            device_id=cmd.device_id,
            title_id=title.id,
            studio_id=title.studio_id,
            at=cmd.at,
            duration=rules.license_duration(title.studio_id, title.id),
            remaining=remaining,
            resets_at=resets_at,
            request_id=cmd.request_id,
        )
        self.record(acquired)
        return Verdict(
            True, _granted_reason(acquired), license_id=license_id,
            remaining=remaining, resets_at=resets_at,
        )

    def renew(self, cmd: RenewLicense, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        self._member_plan()
        license = self._held(cmd.license_id)
        title = _title(catalogue, license.state.title_id)
        downloaded = self.downloaded(title.id)
        denial = policy.check_catalogue(title, cmd.at)
        if denial is None and rules.renewal_counts:
            denial = policy.check_title_year(downloaded, title, cmd.at, rules)
        if denial is not None:
            return self._deny("renew", cmd, denial, title, license.state.device_id, cmd.license_id)
        remaining, resets_at = policy.remaining_after(downloaded, title, cmd.at, rules, renewal=True)
        renewed = license.renew(
            cmd.at, rules.license_duration(title.studio_id, title.id), remaining, resets_at, cmd.request_id
        )
        self.record(renewed)
        return Verdict(
            True, _granted_reason(renewed), license_id=cmd.license_id,
            remaining=remaining, resets_at=resets_at,
        )

    def play(self, cmd: PlayDownload, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        license = self._held(cmd.license_id)
        if not license.playable(cmd.at):
            raise CommandRefusedError(
                f"licence {cmd.license_id} expired at {policy.when(license.state.expires_at)}; renew it to play"
            )
        s = license.state
        played = license.play(cmd.at, rules.after_first_play(s.studio_id, s.title_id), cmd.request_id)
        if played is None:
            return Verdict(True, "playing", license_id=cmd.license_id)
        self.record(played)
        return Verdict(True, _played_reason(played), license_id=s.license_id)

    def release(self, cmd: ReleaseLicense, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        license = self._held(cmd.license_id)
        released = license.release(cmd.at, "deleted", cmd.request_id)
        self.record(released)
        return Verdict(True, _released_reason(released), license_id=cmd.license_id)

    def expire_title(self, cmd: ExpireTitleLicenses, rules: RuleSet, catalogue: Catalogue) -> Verdict:
        title = _title(catalogue, cmd.title_id)
        if not title.left_by(cmd.at):
            raise InvalidCommandError(
                f"title {title.id} has not left the catalogue by {policy.when(cmd.at)}; set its leaving_on first"
            )
        return Verdict(True, f"'{title.name}' left the catalogue; its licences are expired")

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
        self, action: str, cmd: Command, denial: policy.Denial, title: Title, device_id: str, license_id: str | None
    ) -> Verdict:
        self.record(
            DownloadDenied(
                action=action,
                rule=denial.rule,
                limit=denial.limit,
                retry_at=denial.retry_at,
                reason=denial.reason,
                device_id=device_id,
                title_id=title.id,
                studio_id=title.studio_id,
                license_id=license_id,
                at=cmd.at,
                request_id=cmd.request_id,
            )
        )
        return Verdict(False, denial.reason, denial.rule, denial.limit, denial.retry_at, license_id)

    # -- evolution -----------------------------------------------------------------------

    def _remember(self, request_id: str, record: RequestRecord) -> None:
        if not request_id:
            return
        requests = self.state.requests
        requests[request_id] = record
        if len(requests) > REQUEST_MEMORY:
            del requests[next(iter(requests))]

    def _remember_grant(self, e: LicenseAcquired | LicenseRenewed) -> None:
        self._remember(
            e.request_id,
            RequestRecord(True, e.license_id, remaining=e.remaining, resets_at=e.resets_at, reason=_granted_reason(e)),
        )

    @applies(MemberSubscribed)
    def _subscribed(self, e: MemberSubscribed) -> None:
        self.state.plan = e.plan
        self.state.member_since = e.at
        self._remember(e.request_id, RequestRecord(True, reason=_subscribed_reason(e)))

    @applies(PlanChanged)
    def _plan_changed(self, e: PlanChanged) -> None:
        self.state.plan = e.new_plan
        self._remember(e.request_id, RequestRecord(True, reason=_plan_changed_reason(e)))

    @applies(MembershipCancelled)
    def _cancelled(self, e: MembershipCancelled) -> None:
        self.state.plan = None
        self.state.member_since = None
        self._remember(e.request_id, RequestRecord(True, reason=_cancelled_reason(e)))

    @applies(MemberForgotten)
    def _forgotten(self, e: MemberForgotten) -> None:
        s = self.state
        s.plan = s.member_since = None
        s.devices.clear()
        s.forgotten = True
        self._remember(e.request_id, RequestRecord(True, reason=_forgotten_reason(e)))

    @applies(DeviceRegistered)
    def _device_registered(self, e: DeviceRegistered) -> None:
        self.state.devices[e.device_id] = Device(registered_at=e.at, kind=e.kind, name=e.device_name)
        self._remember(e.request_id, RequestRecord(True, reason=_registered_reason(e)))

    @applies(DeviceRemoved)
    def _device_removed(self, e: DeviceRemoved) -> None:
        self.state.devices.pop(e.device_id, None)
        self._remember(e.request_id, RequestRecord(True, reason=_removed_reason(e)))

    @applies(LicenseAcquired)
    def _acquired(self, e: LicenseAcquired) -> None:
        s = self.state
        s.licenses[e.license_id] = License.started(e)
        device = s.devices.get(e.device_id)
        if device is not None:
            device.held += 1
        s.studio_active[e.studio_id] = s.studio_active.get(e.studio_id, 0) + 1
        self._title(e.title_id, e.studio_id).downloaded(e.at, renewal=False)
        s.grants += 1
        self._remember_grant(e)

    @applies(LicenseRenewed)
    def _renewed(self, e: LicenseRenewed) -> None:
        state = self.state.licenses.get(e.license_id)
        if state is not None:
            License(state).renewed(e)
            self._title(e.title_id, state.studio_id).downloaded(e.at, renewal=True)
        self.state.grants += 1
        self._remember_grant(e)

    @applies(LicensePlayed)
    def _played(self, e: LicensePlayed) -> None:
        state = self.state.licenses.get(e.license_id)
        if state is not None:
            License(state).played(e)
        self._remember(e.request_id, RequestRecord(True, e.license_id, reason=_played_reason(e)))

    @applies(LicenseExpired)
    def _expired(self, e: LicenseExpired) -> None:
        self._end(e.license_id)

    @applies(LicenseReleased)
    def _released(self, e: LicenseReleased) -> None:
        self._end(e.license_id)
        self._remember(e.request_id, RequestRecord(True, e.license_id, reason=_released_reason(e)))

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
        self._remember(
            e.request_id,
            RequestRecord(False, e.license_id, rule=e.rule, limit=e.limit, retry_at=e.retry_at, reason=e.reason),
        )


def _title(catalogue: Catalogue, title_id: str) -> Title:
    title = catalogue.title(title_id)
    if title is None:
        raise InvalidCommandError(f"no title {title_id!r} in the catalogue")
    return title


_Handler = Callable[[MemberAccount, Command, RuleSet, Catalogue], Verdict]
_HANDLERS: dict[type[Command], _Handler] = {
    Subscribe: MemberAccount.subscribe,  # type: ignore[dict-item]
    ChangePlan: MemberAccount.change_plan,  # type: ignore[dict-item]
    CancelMembership: MemberAccount.cancel,  # type: ignore[dict-item]
    RegisterDevice: MemberAccount.register_device,  # type: ignore[dict-item]
    RemoveDevice: MemberAccount.remove_device,  # type: ignore[dict-item]
    AcquireLicense: MemberAccount.acquire,  # type: ignore[dict-item]
    RenewLicense: MemberAccount.renew,  # type: ignore[dict-item]
    PlayDownload: MemberAccount.play,  # type: ignore[dict-item]
    ReleaseLicense: MemberAccount.release,  # type: ignore[dict-item]
    ExpireTitleLicenses: MemberAccount.expire_title,  # type: ignore[dict-item]
    ForgetMember: MemberAccount.forget,  # type: ignore[dict-item]
}
