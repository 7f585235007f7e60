"""Store URLs and the driver-error boundary: no node needed (only the driver)."""

from __future__ import annotations

import inspect
import ssl

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")
import cassandra
import cassandra.cluster
import cassandra.connection
import cassandra.pool
import cassandra.protocol
import cassandra.segment
from cassandra import ConsistencyLevel, WriteType

from es_core import (
    EventSourcingError,
    InvalidStoreUrlError,
    StoreAuthenticationError,
    StoreError,
    StoreOutcomeUnknownError,
    StoreTimeoutError,
    StoreUnavailableError,
    open_store,
)
from es_core.stores.cassandra import parse_url
from es_core.stores.cassandra_errors import CAS_WRITE_UNKNOWN, DRIVER_ERRORS, TRANSLATED, translate_driver_error
from tests.cassandra.driver_errors import cas_write_unknown

# -- URLs ------------------------------------------------------------------------------------------


def test_a_full_url_parses_into_typed_options() -> None:
    options = parse_url(
        "cassandra://10.0.0.1,10.0.0.2:9142/orders?replication_factor=3&datacenter=dc1&consistency=quorum"
        "&serial_consistency=SERIAL&bucket_width=5000&connect_timeout=2.5&request_timeout=4"
        "&clock_skew_ms=50&feed_lease_ms=800&create=false"
    )
    assert options == {
        "hosts": ("10.0.0.1", "10.0.0.2"),
        "port": 9142,
        "keyspace": "orders",
        "replication_factor": 3,
        "datacenter": "dc1",
        "consistency": "quorum",
        "serial_consistency": "SERIAL",
        "bucket_width": 5000,
        "connect_timeout": 2.5,
        "request_timeout": 4.0,
        "clock_skew_ms": 50,
        "feed_lease_ms": 800,
        "create": False,
    }


def test_defaults_leave_options_out_and_ipv6_hosts_work() -> None:
    assert parse_url("cassandra://localhost/events") == {"hosts": ("localhost",), "keyspace": "events"}
    assert parse_url("cassandra://[::1]:9042/events")["hosts"] == ("::1",)


@pytest.mark.parametrize(
    "url",
    [
        "cassandra://localhost/events?colour=blue",  # unknown option
        "cassandra://localhost/events?replication_factor=three",
        "cassandra://localhost/events?bucket_width=10&bucket_width=20",  # twice
        "cassandra://localhost/events?create=maybe",
        "cassandra://localhost/events?datacenter=",
        "cassandra://localhost/",  # no keyspace
        "cassandra://localhost/a/b",
        "cassandra://localhost/Bad-Name",
        "cassandra://localhost/" + "k" * 49,
        "cassandra://:secret@localhost/events",  # a password without a user
        "cassandra://h1:9042,h2:9043/events",  # one port for every host
        "cassandra://h1:99999/events",
        "cassandra:///events",
        "cassandra://localhost/events#fragment",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidStoreUrlError):
        parse_url(url)


@pytest.mark.parametrize(
    "query",
    [
        "consistency=SERIAL",  # a serial level is for conditional writes only
        "consistency=ANY",
        "consistency=sometimes",
        "serial_consistency=QUORUM",
        "bucket_width=5",
        "replication_factor=0",
        "request_timeout=0",
        "feed_lease_ms=0",
    ],
)
def test_bad_option_values_are_refused_before_connecting(query: str) -> None:
    # port 1 would refuse a connection: the value is checked first
    with pytest.raises(InvalidStoreUrlError):
        open_store(f"cassandra://127.0.0.1:1/events?{query}")


def test_unknown_keyword_options_are_refused() -> None:
    with pytest.raises(InvalidStoreUrlError, match="colour"):
        open_store("cassandra://127.0.0.1:1/events", colour="blue")


# -- the driver-error boundary -------------------------------------------------------------------

CAS_UNKNOWN = cas_write_unknown()
TLS_REFUSED = "Tried connecting to [('h1', 9042)]. Last error: [SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate"
UNAVAILABLE = cassandra.Unavailable("not enough replicas", consistency=ConsistencyLevel.LOCAL_QUORUM,
                                    required_replicas=2, alive_replicas=1)  # fmt: skip

CASES: list[tuple[BaseException, type[StoreError]]] = [
    # the outcome is unknown: the write may have landed (or may still land)
    (cassandra.WriteTimeout("cas", write_type=WriteType.CAS), StoreOutcomeUnknownError),
    (cassandra.WriteTimeout("batch", write_type=WriteType.BATCH), StoreOutcomeUnknownError),
    (cassandra.WriteTimeout("simple", write_type=WriteType.SIMPLE), StoreOutcomeUnknownError),
    (CAS_UNKNOWN, StoreOutcomeUnknownError),
    (cassandra.WriteFailure("replica failed", failures=1), StoreOutcomeUnknownError),
    (cassandra.OperationTimedOut(errors={}, last_host="127.0.0.1"), StoreOutcomeUnknownError),
    (cassandra.connection.ConnectionShutdown("closed in flight"), StoreOutcomeUnknownError),
    (cassandra.protocol.ServerError(0x0000, "server bug", None), StoreOutcomeUnknownError),
    (cassandra.cluster.NoHostAvailable("gave up", {"h1:9042": cassandra.connection.ConnectionShutdown("closed")}),
     StoreOutcomeUnknownError),
    (cassandra.cluster.NoHostAvailable("gave up", {"h1:9042": CAS_UNKNOWN}), StoreOutcomeUnknownError),
    # a timeout that wrote nothing
    (cassandra.ReadTimeout("read", data_retrieved=False), StoreTimeoutError),
    # nothing was sent, or nothing was executed
    (UNAVAILABLE, StoreUnavailableError),
    (cassandra.cluster.NoHostAvailable("none", {}), StoreUnavailableError),
    (cassandra.cluster.NoHostAvailable("none", {"h1:9042": ConnectionRefusedError(111, "refused")}),
     StoreUnavailableError),
    (cassandra.cluster.NoHostAvailable("none", {"h1:9042": cassandra.OperationTimedOut("Timed out creating "
                                                                                       "connection (5 seconds)")}),
     StoreUnavailableError),
    (cassandra.connection.ConnectionException("refused"), StoreUnavailableError),
    (cassandra.connection.ConnectionBusy("busy"), StoreUnavailableError),
    (cassandra.pool.NoConnectionsAvailable(), StoreUnavailableError),
    (cassandra.protocol.OverloadedErrorMessage(0x1001, "overloaded", None), StoreUnavailableError),
    (cassandra.protocol.IsBootstrappingErrorMessage(0x1002, "bootstrapping", None), StoreUnavailableError),
    # credentials
    (cassandra.AuthenticationFailed("who"), StoreAuthenticationError),
    (cassandra.cluster.NoHostAvailable("auth", {"h1:9042": cassandra.AuthenticationFailed("bad credentials")}),
     StoreAuthenticationError),
    # retrying will not help
    (cassandra.cluster.NoHostAvailable("tls", {"h1:9042": ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]")}),
     StoreError),
    (cassandra.cluster.NoHostAvailable("tls", {"h1:9042": PermissionError(1, TLS_REFUSED)}), StoreError),
    (cassandra.connection.ProtocolError("bad frame"), StoreError),
    (cassandra.segment.CrcException("bad checksum"), StoreError),
    (cassandra.ReadFailure("tombstones", failures=1), StoreError),
    (cassandra.InvalidRequest("bad query"), StoreError),
    (cassandra.Unauthorized("no"), StoreAuthenticationError),
    (cassandra.protocol.SyntaxException(0x2000, "syntax", None), StoreError),
    (cassandra.protocol.ErrorMessage(0x1234, "a code this driver does not know", None), StoreError),
    (cassandra.DriverException("other"), StoreError),
]  # fmt: skip


@pytest.mark.parametrize(("driver_error", "expected"), CASES, ids=lambda c: type(c).__name__)
def test_each_driver_error_maps_to_its_store_error(driver_error: BaseException, expected: type[StoreError]) -> None:
    translated = translate_driver_error(driver_error)
    assert type(translated) is expected
    with pytest.raises(expected) as info:
        with TRANSLATED:
            raise driver_error
    if expected is StoreAuthenticationError:  # the driver's message names the user: not chained
        assert info.value.__cause__ is None and info.value.__suppress_context__
    else:
        assert info.value.__cause__ is driver_error


def test_the_driver_has_no_class_for_cas_write_unknown_so_the_boundary_maps_the_code() -> None:
    assert type(CAS_UNKNOWN) is cassandra.protocol.ErrorMessage and CAS_UNKNOWN.code == CAS_WRITE_UNKNOWN
    assert CAS_WRITE_UNKNOWN not in cassandra.protocol.error_classes


@pytest.mark.parametrize("driver_error", [c for c, e in CASES if e is StoreOutcomeUnknownError],
                         ids=lambda c: type(c).__name__)  # fmt: skip
def test_every_unknown_outcome_says_retry_with_the_same_event_ids(driver_error: BaseException) -> None:
    message = str(translate_driver_error(driver_error))
    assert "may or may not have landed" in message and "same event ids" in message
    assert "replication_factor=1" in str(translate_driver_error(UNAVAILABLE))


def test_every_driver_exception_class_is_mapped() -> None:
    """No driver exception escapes untranslated: every exception class the driver defines is a
    subclass of something the boundary catches."""
    modules = (cassandra, cassandra.cluster, cassandra.connection, cassandra.protocol)
    classes = {
        obj
        for module in modules
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__.startswith("cassandra")
    }
    # raised at import or by APIs the store does not use (tracing, paging by hand, UDT registration)
    internal = {"DependencyException", "UserTypeDoesNotExist", "QueryExhausted", "TraceUnavailable",
                "NotSupportedError", "InternalError"}  # fmt: skip
    unmapped = sorted(c.__name__ for c in classes if not issubclass(c, DRIVER_ERRORS) and c.__name__ not in internal)
    assert unmapped == []


def test_the_boundary_lets_the_projects_own_and_foreign_errors_pass() -> None:
    with pytest.raises(ValueError):
        with TRANSLATED:
            raise ValueError("not the driver's")
    with pytest.raises(InvalidStoreUrlError):
        with TRANSLATED:
            raise InvalidStoreUrlError("ours")
    assert issubclass(StoreTimeoutError, StoreUnavailableError) and issubclass(StoreError, EventSourcingError)


def test_an_unreachable_node_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        open_store("cassandra://127.0.0.1:1/events?connect_timeout=1")


def test_the_docs_show_the_cql_the_store_runs() -> None:
    from pathlib import Path

    from es_core.stores.cassandra_schema import schema_cql

    docs = (Path(__file__).resolve().parents[2] / "docs" / "cassandra.md").read_text()
    for name, statement in schema_cql("es_events", 3).items():
        assert statement + ";" in docs, f"docs/cassandra.md does not show the CQL of {name}"
