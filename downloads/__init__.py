"""downloads: Netflix's download licence accounting, rebuilt on ``es_core``.

A member downloads titles to devices; each download is a licence, validated against studio
and plan rules that live in data (``data/rules/*.toml``), with the member's past downloads
taken into account. One stream per member is the consistency boundary; *License* and
*Downloaded* are entities inside it. Commands go through ``DownloadService`` (load, check the
rules at the service's clock, record, save; idempotent by request id) and come back as an
``Outcome`` holding one ``Answer``; denials are events, and every decision names the rule set
that judged it. Read models, a seeded simulator, what-if replays under other rules, time travel
in two times, and explanations are built on the same log.
Device names are personal data: ``personal_data()`` names them for ``EventStore.protect``
(``protect_from_environment`` does it with the key-encryption key in ``$ES_KEK``), and
``DownloadService.forget_member`` forgets a member.

Notebooks import from ``downloads`` and ``es_core`` only. The domain never imports pandas.
"""

from .answers import Answer, Outcome
from .catalogue import DEFAULT_CATALOGUE_PATH, Catalogue, Studio, Title, load_catalogue
from .census import DecisionCensus, RuleSetDecisions, decision_census
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
    command_from_payload,
)
from .downloaded import Downloaded, DownloadedState
from .errors import (
    ClockSkewError,
    CommandRefusedError,
    DownloadsError,
    InvalidCommandError,
    LateRequestError,
    LicenseNotHeldError,
    MemberForgottenError,
    NotSubscribedError,
    RequestForgottenError,
    RequestReusedError,
    RuleFileError,
    UnknownDeviceError,
)
from .events import (
    EVENT_TYPES,
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
    new_registry,
    personal_data,
)
from .explain import DenialExplanation, TimelineEntry, explain_denial, timeline
from .license import License, LicenseState
from .member import MemberAccount, MemberState, license_id_for
from .projections import (
    ActiveLicenses,
    DenialsByRule,
    DeviceNames,
    DevicesPerMember,
    DownloadsPerTitleDay,
    ReadModels,
)
from .protection import protect_from_environment
from .requests import REQUEST_MEMORY
from .rules import DEFAULT_RULES_PATH, RULE_IDS, RuleSet, load_rules
from .service import DownloadService
from .simulator import SimulationReport, simulate
from .whatif import Change, WhatIfReport, recorded_requests, whatif

__all__ = [
    "DEFAULT_CATALOGUE_PATH",
    "DEFAULT_RULES_PATH",
    "EVENT_TYPES",
    "REQUEST_MEMORY",
    "RULE_IDS",
    "AcquireLicense",
    "ActiveLicenses",
    "Answer",
    "CancelMembership",
    "Catalogue",
    "Change",
    "ChangePlan",
    "ClockSkewError",
    "Command",
    "CommandRefusedError",
    "DecisionCensus",
    "DenialExplanation",
    "DenialsByRule",
    "DeviceNames",
    "DeviceRegistered",
    "DeviceRemoved",
    "DevicesPerMember",
    "DownloadDenied",
    "DownloadService",
    "Downloaded",
    "DownloadedState",
    "DownloadsError",
    "DownloadsPerTitleDay",
    "ExpireTitleLicenses",
    "ForgetMember",
    "InvalidCommandError",
    "LateRequestError",
    "License",
    "LicenseAcquired",
    "LicenseExpired",
    "LicenseNotHeldError",
    "LicensePlayed",
    "LicenseReleased",
    "LicenseRenewed",
    "LicenseState",
    "MemberAccount",
    "MemberForgotten",
    "MemberForgottenError",
    "MemberState",
    "MemberSubscribed",
    "MembershipCancelled",
    "NotSubscribedError",
    "Outcome",
    "PlanChanged",
    "PlayDownload",
    "ReadModels",
    "RegisterDevice",
    "ReleaseLicense",
    "RemoveDevice",
    "RenewLicense",
    "RequestForgottenError",
    "RequestReusedError",
    "RuleFileError",
    "RuleSet",
    "RuleSetDecisions",
    "SimulationReport",
    "Studio",
    "Subscribe",
    "TimelineEntry",
    "Title",
    "UnknownDeviceError",
    "WhatIfReport",
    "command_from_payload",
    "decision_census",
    "explain_denial",
    "license_id_for",
    "load_catalogue",
    "load_rules",
    "new_registry",
    "personal_data",
    "protect_from_environment",
    "recorded_requests",
    "simulate",
    "timeline",
    "whatif",
]
