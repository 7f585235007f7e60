"""The downloads domain's errors, all under es_core's ``EventSourcingError``.

::

    EventSourcingError (es_core)
    └── DownloadsError
        ├── RuleFileError            a rule or catalogue file that cannot be used (+ InvalidInputError)
        ├── InvalidCommandError      a malformed command: naive time, empty id, unknown plan (+ InvalidInputError)
        │   ├── ClockSkewError       its time is further from the service's clock than the rules allow
        │   └── RequestReusedError   a request id the member used before, for different content
        ├── CommandRefusedError      the command does not fit the member's state; nothing is recorded
        │   ├── NotSubscribedError   no active membership (never joined, or cancelled)
        │   ├── UnknownDeviceError   the device is not registered to the member
        │   ├── LicenseNotHeldError  the licence is unknown, released, or ended with its title
        │   └── LateRequestError     its time is too far before the member's latest decision
        ├── RequestForgottenError    a request id the store has seen, too old to recall its outcome
        └── ScaleOutError            a Dask cluster that cannot be reached or used, or a split's task that failed

A *denial* (a business rule said no) is not an error: it is an outcome, recorded as a
``DownloadDenied`` event. Errors mean the command itself was wrong, and nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from es_core import EventSourcingError, InvalidInputError


class DownloadsError(EventSourcingError):
    """Root of the downloads domain's errors."""


class RuleFileError(DownloadsError, InvalidInputError):
    """A rule or catalogue file that is missing, not valid TOML, or breaks the schema.

    ``path`` is the file, ``key`` the dotted key path of the offending entry (empty when the
    problem is the whole file), ``problem`` what is wrong with it."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        where = f"{path}: {key}: " if key else f"{path}: "
        super().__init__(where + problem)
        self.path = str(path)
        self.key = key
        self.problem = problem


class InvalidCommandError(DownloadsError, InvalidInputError):
    """A command that is malformed whatever the member's state."""


class CommandRefusedError(DownloadsError):
    """A well-formed command that does not apply to the member as they are now."""


class NotSubscribedError(CommandRefusedError):
    """The member has no active membership."""


class UnknownDeviceError(CommandRefusedError):
    """The device is not registered to the member."""


class LicenseNotHeldError(CommandRefusedError):
    """The member holds no licence with that id (never acquired, released, or ended)."""


class RequestForgottenError(DownloadsError):
    """The store holds this request's events, but the member no longer remembers its outcome."""


class ClockSkewError(InvalidCommandError):
    """A command whose ``at`` is further from the service's clock than the rules' ``[clock]
    max_skew_minutes``. ``bound`` names that key, ``limit`` is its value, ``at`` the command's
    time and ``reference`` the service time it was compared with."""

    def __init__(self, message: str, *, bound: str, limit: timedelta, at: datetime, reference: datetime) -> None:
        super().__init__(message)
        self.bound, self.limit, self.at, self.reference = bound, limit, at, reference


class LateRequestError(CommandRefusedError):
    """A command whose ``at`` is earlier than the member's latest decision by more than the
    rules' ``[clock] max_lateness_minutes``, or a download or renewal dated before the
    membership began. ``bound`` names the key (or ``member_since``), ``reference`` the time it
    was compared with."""

    def __init__(self, message: str, *, bound: str, limit: timedelta, at: datetime, reference: datetime) -> None:
        super().__init__(message)
        self.bound, self.limit, self.at, self.reference = bound, limit, at, reference


class RequestReusedError(InvalidCommandError):
    """A request id the member already used for another request. Request ids are idempotency
    keys: a retry must repeat the first request, so nothing is written and the first outcome
    stands. ``differences`` maps each differing field to (first value, this value)."""

    def __init__(self, message: str, *, request_id: str, differences: dict[str, tuple[str, str]]) -> None:
        super().__init__(message)
        self.request_id, self.differences = request_id, differences


class ScaleOutError(DownloadsError):
    """Work on a Dask cluster (``downloads.scaleout``) could not finish: the scheduler does not
    answer, Dask is not installed, the store cannot be shared with workers, or a split's task
    failed after its retries. Nothing partial is ever returned in its place."""
