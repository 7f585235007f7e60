"""Store URLs and the driver-error boundary: no node needed (only the driver)."""

from __future__ import annotations

import inspect

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
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    open_store,
)
from es_core.stores.cassandra import parse_url
from es_core.stores.cassandra_errors import DRIVER_ERRORS, TRANSLATED, translate_driver_error

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
        "cassandra://user:secret@localhost/events",
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

UNAVAILABLE = cassandra.Unavailable("not enough replicas", consistency=ConsistencyLevel.LOCAL_QUORUM,
                                    required_replicas=2, alive_replicas=1)  # fmt: skip

CASES: list[tuple[BaseException, type[StoreError]]] = [
    (cassandra.WriteTimeout("cas", write_type=WriteType.CAS), StoreTimeoutError),
    (cassandra.WriteTimeout("batch", write_type=WriteType.BATCH), StoreTimeoutError),
    (cassandra.WriteTimeout("simple", write_type=WriteType.SIMPLE), StoreTimeoutError),
    (cassandra.ReadTimeout("read", data_retrieved=False), StoreTimeoutError),
    (cassandra.OperationTimedOut(errors={}, last_host="127.0.0.1"), StoreTimeoutError),
    (UNAVAILABLE, StoreUnavailableError),
    (cassandra.cluster.NoHostAvailable("none", {}), StoreUnavailableError),
    (cassandra.connection.ConnectionException("refused"), StoreUnavailableError),
    (cassandra.connection.ConnectionShutdown("shut"), StoreUnavailableError),
    (cassandra.connection.ConnectionBusy("busy"), StoreUnavailableError),
    (cassandra.pool.NoConnectionsAvailable(), StoreUnavailableError),
    (cassandra.connection.ProtocolError("bad frame"), StoreError),
    (cassandra.segment.CrcException("bad checksum"), StoreError),
    (cassandra.protocol.OverloadedErrorMessage(0x1001, "overloaded", None), StoreUnavailableError),
    (cassandra.protocol.IsBootstrappingErrorMessage(0x1002, "bootstrapping", None), StoreUnavailableError),
    (cassandra.ReadFailure("tombstones", failures=1), StoreError),
    (cassandra.WriteFailure("replica failed", failures=1), StoreError),
    (cassandra.InvalidRequest("bad query"), StoreError),
    (cassandra.Unauthorized("no"), StoreError),
    (cassandra.AuthenticationFailed("who"), StoreError),
    (cassandra.protocol.SyntaxException(0x2000, "syntax", None), StoreError),
    (cassandra.protocol.ServerError(0x0000, "server bug", None), StoreError),
    (cassandra.DriverException("other"), StoreError),
]


@pytest.mark.parametrize(("driver_error", "expected"), CASES, ids=lambda c: type(c).__name__)
def test_each_driver_error_maps_to_its_store_error(driver_error: BaseException, expected: type[StoreError]) -> None:
    translated = translate_driver_error(driver_error)
    assert type(translated) is expected
    with pytest.raises(expected) as info:
        with TRANSLATED:
            raise driver_error
    assert info.value.__cause__ is driver_error


def test_a_timed_out_conditional_write_says_it_may_have_landed() -> None:
    message = str(translate_driver_error(cassandra.WriteTimeout("cas", write_type=WriteType.CAS)))
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
