"""Configuration that would break a guarantee is refused before anything connects (issue 14,
finding 6), and the levels the store runs at are the ones the table in docs/cassandra.md shows.
Credentials and TLS options are parsed here too; no message ever holds a password."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")
from cassandra import ConsistencyLevel

import es_core.stores.cassandra as cassandra_store
from es_core import Expect, InvalidStoreUrlError, NewEvent, open_store
from es_core.stores.cassandra import CassandraStore, parse_url
from es_core.stores.cassandra_config import ALLOWED_LEVELS, check_levels, credentials, redact, tls_context
from tests.cassandra_node import cassandra_url_or_skip

SECRET = "pa:ss/w@rd-7f3c"  # needs percent-encoding in a URL
ENCODED = "pa%3Ass%2Fw%40rd-7f3c"

ALLOWED = [(c, s) for s, levels in ALLOWED_LEVELS.items() for c in levels]
REFUSED = [
    (c, s) for s in ("LOCAL_SERIAL", "SERIAL") for c in ("ONE", "TWO", "THREE", "ANY", "LOCAL_ONE")
] + [("LOCAL_QUORUM", "SERIAL")]


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the store so much as builds a driver Cluster."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the store tried to connect")

    monkeypatch.setattr(cassandra_store, "Cluster", refuse)


# -- consistency levels ------------------------------------------------------------------------


@pytest.mark.parametrize(("consistency", "serial"), REFUSED)
def test_levels_that_break_a_guarantee_are_refused_before_connecting(
    no_connection: None, consistency: str, serial: str
) -> None:
    url = f"cassandra://127.0.0.1/events?consistency={consistency.lower()}&serial_consistency={serial}"
    with pytest.raises(InvalidStoreUrlError, match=f"consistency={consistency}") as info:
        open_store(url)
    assert "breaks the store's guarantees" in str(info.value)
    with pytest.raises(InvalidStoreUrlError):
        CassandraStore("127.0.0.1", "events", consistency=consistency, serial_consistency=serial)


def test_serial_with_a_local_quorum_names_the_data_centre_problem(no_connection: None) -> None:
    with pytest.raises(InvalidStoreUrlError, match="another's commits"):
        open_store("cassandra://127.0.0.1/events?consistency=LOCAL_QUORUM&serial_consistency=SERIAL")


@pytest.mark.parametrize(("consistency", "serial"), ALLOWED)
def test_allowed_combinations_keep_their_levels(consistency: str, serial: str) -> None:
    assert check_levels(consistency.lower(), serial.lower(), "dc1") == (consistency, serial)


def test_each_quorum_needs_a_keyspace_replicated_per_data_centre(no_connection: None) -> None:
    with pytest.raises(InvalidStoreUrlError, match="datacenter="):
        open_store("cassandra://127.0.0.1/events?consistency=EACH_QUORUM")


def test_the_default_level_is_derived_from_the_serial_level() -> None:
    assert check_levels(None, "LOCAL_SERIAL") == ("LOCAL_QUORUM", "LOCAL_SERIAL")
    assert check_levels(None, "SERIAL") == ("QUORUM", "SERIAL")


@pytest.mark.parametrize("query", ["serial_consistency=QUORUM", "serial_consistency=ONE", "consistency=SERIAL",
                                   "consistency=LOCAL_SERIAL", "consistency=sometimes"])  # fmt: skip
def test_levels_in_the_wrong_place_are_refused(no_connection: None, query: str) -> None:
    with pytest.raises(InvalidStoreUrlError, match=query.split("=")[0]):
        open_store(f"cassandra://127.0.0.1/events?{query}")


# -- credentials -------------------------------------------------------------------------------


def test_credentials_in_the_url_are_percent_decoded() -> None:
    options = parse_url(f"cassandra://es%20user:{ENCODED}@10.0.0.1,10.0.0.2:9142/orders")
    assert options == {
        "username": "es user",
        "password": SECRET,
        "hosts": ("10.0.0.1", "10.0.0.2"),
        "port": 9142,
        "keyspace": "orders",
    }


def test_url_credentials_win_over_the_environment_which_fills_in() -> None:
    env = {"ES_CASSANDRA_USERNAME": "env-user", "ES_CASSANDRA_PASSWORD": "env-pass"}
    assert credentials("url-user", "url-pass", env) == ("url-user", "url-pass")
    assert credentials(None, None, env) == ("env-user", "env-pass")
    assert credentials("url-user", None, env) == ("url-user", "env-pass")  # the password stays out of the URL
    assert credentials(None, None, {}) is None


@pytest.mark.parametrize(
    ("username", "password", "env", "message"),
    [
        ("someone", None, {}, "has no password"),
        (None, None, {"ES_CASSANDRA_PASSWORD": SECRET}, "without a user name"),
        ("someone", "", {}, "has no password"),
    ],
)
def test_half_given_credentials_are_refused(
    username: str | None, password: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidStoreUrlError, match=message) as info:
        credentials(username, password, env)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        f"cassandra://someone:{ENCODED}@localhost/events?colour=blue",
        f"cassandra://someone:{ENCODED}@localhost/Bad-Name",
        f"cassandra://someone:{ENCODED}@localhost:99999/events",
        f"cassandra://someone:{ENCODED}@localhost/events?consistency=ONE",
        f"cassandra://someone:{SECRET}@localhost/events",  # not encoded: '/' ends the host list
        "cassandra://someone:pa#ss@localhost/events",  # not encoded: '#' starts a fragment
    ],
)
def test_refusals_never_show_the_password(no_connection: None, url: str) -> None:
    with pytest.raises(InvalidStoreUrlError) as info:
        open_store(url)
    for text in (str(info.value), repr(info.value)):
        assert SECRET not in text and ENCODED not in text and "someone" not in text and "pa#ss" not in text


def test_redact_hides_credentials_only() -> None:
    assert redact(f"cassandra://u:{ENCODED}@h1,h2:9042/ks?tls=true") == "cassandra://***@h1,h2:9042/ks?tls=true"
    assert redact("cassandra://h1/ks") == "cassandra://h1/ks"
    assert redact(f"cassandra://u:{SECRET}@h1/ks") == "cassandra://***@h1/ks"


# -- TLS ---------------------------------------------------------------------------------------


def test_tls_is_off_unless_asked_for() -> None:
    assert tls_context(None, None, "full") is None
    assert tls_context(False, None, "full") is None


def test_tls_verify_modes() -> None:
    full, ca, none = (tls_context(True, None, mode) for mode in ("full", "ca", "none"))
    assert full is not None and full.check_hostname and full.verify_mode == ssl.CERT_REQUIRED
    assert ca is not None and not ca.check_hostname and ca.verify_mode == ssl.CERT_REQUIRED
    assert none is not None and none.verify_mode == ssl.CERT_NONE
    assert tls_context(None, None, "none") is not None  # asking for a verify mode turns TLS on


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("tls_ca=/nonexistent/ca.pem", "no such file"),
        ("tls=false&tls_verify=none", "need TLS"),
        ("tls=true&tls_verify=sometimes", "tls_verify must be one of"),
        ("tls=perhaps", "is not a bool"),
    ],
)
def test_bad_tls_options_are_refused_before_connecting(no_connection: None, query: str, message: str) -> None:
    with pytest.raises(InvalidStoreUrlError, match=message):
        open_store(f"cassandra://127.0.0.1/events?{query}")


def test_a_tls_ca_that_is_not_a_certificate_is_refused(no_connection: None, tmp_path: Any) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(InvalidStoreUrlError, match="no PEM certificate"):
        open_store(f"cassandra://127.0.0.1/events?tls_ca={bogus}")


# -- the levels a store really runs at, on a real node -------------------------------------------


class Levels:
    """Every request's consistency and serial consistency, from the driver's request listener."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str]] = []

    def __call__(self, future: Any) -> None:
        message = future.message
        query = getattr(future.query, "query_string", None) or type(future.query).__name__
        names = ConsistencyLevel.value_to_name
        serial = getattr(message, "serial_consistency_level", None)
        self.seen.append((names[message.consistency_level], names.get(serial) if serial else None, str(query)))


@pytest.fixture(scope="module")
def levels_url() -> Iterator[str]:
    # NetworkTopologyStrategy (datacenter given), which every allowed level works with
    url = cassandra_url_or_skip(f"es_test_levels_{uuid.uuid4().hex[:8]}", bucket_width="10", datacenter="datacenter1")
    CassandraStore.create(url)
    yield url
    CassandraStore.drop(url)


@pytest.mark.cassandra
@pytest.mark.parametrize(("consistency", "serial"), ALLOWED)
def test_every_request_runs_at_the_effective_levels(
    levels_url: str, sid: Callable[..., str], consistency: str, serial: str
) -> None:
    url = f"{levels_url}&serial_consistency={serial}"
    if consistency != check_levels(None, serial).consistency:
        url += f"&consistency={consistency}"
    store = open_store(url)
    try:
        assert isinstance(store, CassandraStore)
        assert (store.consistency, store.serial_consistency) == (consistency, serial)
        levels = Levels()
        store.session.add_request_init_listener(levels)
        s = sid("levels")
        store.append(s, [NewEvent(event_type="Tick", data={"i": i}) for i in range(12)], Expect.NO_STREAM)
        store.append(s, [NewEvent(event_type="Tick", data={"i": 12})], Expect.ANY)
        assert len(store.read_stream(s)) == 13
        assert store.settled_position() >= store.read_stream(s)[-1].position
        assert list(store.read_all(after=0, limit=1))
        assert levels.seen, "no request was observed"
        for level, serial_level, query in levels.seen:
            assert level == consistency, query
            assert serial_level in (None, serial), query
        assert any(serial_level == serial for _, serial_level, _ in levels.seen)
        reopened = open_store(store.url)
        try:
            assert isinstance(reopened, CassandraStore)
            assert (reopened.consistency, reopened.serial_consistency) == (consistency, serial)
        finally:
            reopened.close()
    finally:
        store.close()
