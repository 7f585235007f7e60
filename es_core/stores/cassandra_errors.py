"""The one boundary where Cassandra driver exceptions become the project's ``StoreError`` tree.

Every public method of ``CassandraStore`` runs inside :data:`TRANSLATED` (generators translate
as they iterate), so callers never catch driver exceptions. The mapping, by what a caller can do:

* ``StoreOutcomeUnknownError`` (the write may or may not have landed: retry with the same event
  ids): ``WriteTimeout`` of any write type, ``WriteFailure``, protocol v5's ``CAS_WRITE_UNKNOWN``
  (0x1700: the driver has no class for it, so it is an ``ErrorMessage`` with that code),
  ``OperationTimedOut`` (the client stopped waiting for a sent request), ``ConnectionShutdown``
  (the connection closed with the request in flight), ``ServerError``, and ``NoHostAvailable``
  when any host failed in one of these ways.
* ``StoreTimeoutError`` (retry): ``ReadTimeout``.
* ``StoreUnavailableError`` (nothing was written: retry later): ``Unavailable``, any other
  ``NoHostAvailable``, other connection errors, ``Overloaded``, ``IsBootstrapping``, an
  exhausted connection pool.
* ``StoreAuthenticationError`` (fix the credentials or the user's permissions):
  ``AuthenticationFailed``, ``Unauthorized``, and ``NoHostAvailable`` when every host refused
  the login.
* ``StoreError`` naming the TLS options: ``NoHostAvailable`` after a failed TLS handshake.
* ``StoreError`` (a replica failed or the request is wrong: retrying will not help):
  ``ReadFailure``, ``InvalidRequest``, any other driver exception.

Why these are unknown outcomes: a conditional write is a Paxos round. Once a replica has
accepted its proposal, the next round on that partition (any writer's, or a reader's fence)
completes it, so a write that timed out, failed on some replicas or lost its connection may
land after the error was raised. The driver's default retry policy re-sends a request whose
connection closed to the next host, and rethrows write timeouts; only what it gives up on
arrives here. ``ServerError`` counts as unknown because the coordinator may have failed after
the write began.
"""

from __future__ import annotations

import re
import ssl
from typing import Literal

from cassandra import (
    AuthenticationFailed,
    CoordinationFailure,
    DriverException,
    OperationTimedOut,
    RequestValidationException,
    Timeout,
    Unauthorized,
    Unavailable,
    WriteFailure,
    WriteTimeout,
    WriteType,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionException, ConnectionShutdown, ProtocolError
from cassandra.pool import NoConnectionsAvailable
from cassandra.protocol import (
    ErrorMessage,
    IsBootstrappingErrorMessage,
    OverloadedErrorMessage,
    ServerError,
)
from cassandra.segment import CrcException

from ..errors import (
    EventSourcingError,
    StoreAuthenticationError,
    StoreError,
    StoreOutcomeUnknownError,
    StoreTimeoutError,
    StoreUnavailableError,
)

#: Everything the driver raises (``NoHostAvailable``, the connection and framing errors do not
#: derive from ``DriverException``; server error messages the driver does not map are ``ErrorMessage``).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    DriverException,
    NoHostAvailable,
    ConnectionException,
    ConnectionBusy,
    NoConnectionsAvailable,
    ErrorMessage,
    ProtocolError,
    CrcException,
)

CAS_WRITE_UNKNOWN = 0x1700
"""Native protocol v5's error code for a conditional write whose outcome is unknown (Cassandra's
``CasWriteUnknownResultException``: the proposal was accepted by some replicas but not a
quorum). The driver has no class for it, so it arrives as a plain ``ErrorMessage``."""

_NAMED_USER = re.compile(r"\bUser \S+ has\b")

RETRY_SAME_IDS = (
    "the write may or may not have landed; retry with the same event ids "
    "(the store recognises a retry of an append that landed)"
)


def outcome_unknown(exc: BaseException) -> bool:
    """Whether ``exc`` leaves a write's outcome unknown: it may have landed, or may land later."""
    if isinstance(exc, WriteTimeout | WriteFailure | OperationTimedOut | ConnectionShutdown | ServerError):
        return True
    if isinstance(exc, ErrorMessage) and getattr(exc, "code", None) == CAS_WRITE_UNKNOWN:
        return True
    if isinstance(exc, NoHostAvailable):
        # At connect time the per-host errors are refusals and connect timeouts: nothing was sent.
        return any(_request_in_flight(e) for e in _host_errors(exc))
    return False


def _request_in_flight(exc: object) -> bool:
    # An OperationTimedOut inside NoHostAvailable comes from creating a connection, not a request.
    return isinstance(exc, BaseException) and not isinstance(exc, OperationTimedOut) and outcome_unknown(exc)


def _host_errors(exc: NoHostAvailable) -> list[object]:
    errors = getattr(exc, "errors", None)
    return list(errors.values()) if isinstance(errors, dict) else []


def translate_driver_error(exc: BaseException) -> StoreError | None:
    """The ``StoreError`` for a driver exception, or None if ``exc`` is not one."""
    if outcome_unknown(exc):
        return StoreOutcomeUnknownError(f"{_what_happened(exc)}: {RETRY_SAME_IDS} ({exc})")
    if isinstance(exc, NoHostAvailable):
        return _no_host(exc)
    if isinstance(exc, Timeout):  # ReadTimeout (WriteTimeout is an unknown outcome, above)
        return StoreTimeoutError(f"Cassandra timed out: {exc}")
    if isinstance(exc, Unavailable):
        return StoreUnavailableError(
            f"Cassandra has too few live replicas for the consistency level ({exc}); nothing was written. "
            "On a single node, create the keyspace with replication_factor=1"
        )
    if isinstance(exc, ConnectionException | ConnectionBusy | NoConnectionsAvailable):
        return StoreUnavailableError(f"cannot reach Cassandra: {exc}")
    if isinstance(exc, OverloadedErrorMessage | IsBootstrappingErrorMessage):
        return StoreUnavailableError(f"Cassandra is busy: {exc}")
    if isinstance(exc, AuthenticationFailed):
        return _refused_login([exc])
    if isinstance(exc, Unauthorized):
        # Cassandra's message ("User <name> has no SELECT permission on ...") names the user.
        detail = _NAMED_USER.sub("the user has", str(exc))
        return StoreAuthenticationError(f"the Cassandra user lacks a permission: {detail}")
    if isinstance(exc, CoordinationFailure):
        return StoreError(f"a Cassandra replica failed the request: {exc}")
    if isinstance(exc, RequestValidationException):
        return StoreError(f"Cassandra refused the request: {exc}")
    if isinstance(exc, DRIVER_ERRORS):
        return StoreError(f"Cassandra driver error: {type(exc).__name__}: {exc}")
    return None


def _what_happened(exc: BaseException) -> str:
    if isinstance(exc, WriteTimeout):
        kind = getattr(exc, "write_type", None)
        conditional = kind in (WriteType.CAS, WriteType.BATCH, WriteType.BATCH_LOG)
        return "a conditional write timed out" if conditional else "a write timed out"
    if isinstance(exc, ErrorMessage) and getattr(exc, "code", None) == CAS_WRITE_UNKNOWN:
        return "Cassandra reports the conditional write's outcome unknown"
    if isinstance(exc, WriteFailure):
        return "a replica failed during the write"
    if isinstance(exc, OperationTimedOut):
        return "no reply from Cassandra in time"
    if isinstance(exc, ServerError):
        return "the coordinator failed during the request"
    return "the connection to Cassandra closed with the request in flight"


def _no_host(exc: NoHostAvailable) -> StoreError:
    errors = _host_errors(exc)
    if errors and all(isinstance(e, AuthenticationFailed) for e in errors):
        return _refused_login(errors)
    # The driver re-raises a failed handshake as an OSError that quotes the SSL error.
    tls = [e for e in errors if isinstance(e, ssl.SSLError) or "[SSL" in str(e)]
    if tls:
        return StoreError(
            f"the TLS handshake with Cassandra failed ({tls[0]}): check tls_ca (the certificate that signed "
            "the node's), tls_verify, and that the node has client encryption enabled"
        )
    hint = ""
    if any(isinstance(e, ConnectionResetError) for e in errors):
        hint = " (a node that requires TLS resets plain connections: open the store with tls=true)"
    return StoreUnavailableError(f"cannot reach Cassandra: {exc}{hint}")


def _refused_login(errors: list[object]) -> StoreAuthenticationError:
    """Built from the server's verdict only: its message names the user, which is not repeated."""
    if all("requires authentication" in str(e) for e in errors):
        verdict = "the node requires a user name and password, and none was given"
    else:
        verdict = "the user name or password is wrong"
    return StoreAuthenticationError(
        f"Cassandra refused the login: {verdict}. Give credentials in the URL "
        "(cassandra://user:password@host/keyspace, percent-encoded) or in ES_CASSANDRA_USERNAME and "
        "ES_CASSANDRA_PASSWORD"
    )


class _Translated:
    """Context manager: driver exceptions leave as ``StoreError``; the project's own pass."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:  # never swallows: a driver error leaves translated, anything else as it is
        if exc is None or isinstance(exc, EventSourcingError):
            return False
        error = translate_driver_error(exc)
        if error is None:
            return False
        if isinstance(error, StoreAuthenticationError):
            raise error from None  # the driver's message names the user
        raise error from exc


TRANSLATED = _Translated()  # stateless: one instance serves every call
