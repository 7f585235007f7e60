"""The one boundary where Cassandra driver exceptions become the project's ``StoreError`` tree.

Every public method of ``CassandraStore`` runs inside :data:`TRANSLATED` (generators translate
as they iterate), so callers never catch driver exceptions. The mapping, by what a caller can do:

=====================================================  =======================================
driver exception                                       raised as
=====================================================  =======================================
``WriteTimeout``, ``ReadTimeout``, ``OperationTimedOut``  ``StoreTimeoutError`` (retry; a write may have landed)
``Unavailable``, ``NoHostAvailable``, connection       ``StoreUnavailableError`` (retry later)
errors, ``Overloaded``, ``IsBootstrapping``, an
exhausted connection pool
``ReadFailure``, ``WriteFailure``, ``InvalidRequest``,  ``StoreError`` (a replica failed or the
``Unauthorized``, any other ``DriverException``         request is wrong: retrying will not help)
=====================================================  =======================================
"""

from __future__ import annotations

from typing import Literal

from cassandra import (
    AuthenticationFailed,
    CoordinationFailure,
    DriverException,
    OperationTimedOut,
    RequestValidationException,
    Timeout,
    Unavailable,
    WriteTimeout,
    WriteType,
)
from cassandra.cluster import NoHostAvailable
from cassandra.connection import ConnectionBusy, ConnectionException, ProtocolError
from cassandra.pool import NoConnectionsAvailable
from cassandra.protocol import ErrorMessage, IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.segment import CrcException

from ..errors import EventSourcingError, StoreError, StoreTimeoutError, StoreUnavailableError

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

AMBIGUOUS_WRITE = (
    "the conditional write may or may not have landed; retry with the same event ids "
    "(the store recognises a retry of an append that landed)"
)


def translate_driver_error(exc: BaseException) -> StoreError | None:
    """The ``StoreError`` for a driver exception, or None if ``exc`` is not one."""
    if isinstance(exc, WriteTimeout):
        kind = getattr(exc, "write_type", None)
        if kind in (WriteType.CAS, WriteType.BATCH, WriteType.BATCH_LOG):
            return StoreTimeoutError(f"Cassandra write timed out: {AMBIGUOUS_WRITE} ({exc})")
        return StoreTimeoutError(f"Cassandra write timed out; it may have landed ({exc})")
    if isinstance(exc, Timeout):  # ReadTimeout, and any later Timeout kind
        return StoreTimeoutError(f"Cassandra timed out: {exc}")
    if isinstance(exc, OperationTimedOut):
        return StoreTimeoutError(f"no reply from Cassandra in time; a write may have landed: {exc}")
    if isinstance(exc, Unavailable):
        return StoreUnavailableError(
            f"Cassandra has too few live replicas for the consistency level ({exc}); on a single node, "
            "create the keyspace with replication_factor=1"
        )
    if isinstance(exc, NoHostAvailable | ConnectionException | ConnectionBusy | NoConnectionsAvailable):
        return StoreUnavailableError(f"cannot reach Cassandra: {exc}")
    if isinstance(exc, OverloadedErrorMessage | IsBootstrappingErrorMessage):
        return StoreUnavailableError(f"Cassandra is busy: {exc}")
    if isinstance(exc, CoordinationFailure):
        return StoreError(f"a Cassandra replica failed the request: {exc}")
    if isinstance(exc, RequestValidationException | AuthenticationFailed):
        return StoreError(f"Cassandra refused the request: {exc}")
    if isinstance(exc, DRIVER_ERRORS):
        return StoreError(f"Cassandra driver error: {type(exc).__name__}: {exc}")
    return None


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
        raise error from exc


TRANSLATED = _Translated()  # stateless: one instance serves every call
