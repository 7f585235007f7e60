"""Authentication and TLS on real nodes: one started with ``--auth`` (PasswordAuthenticator and
CassandraAuthorizer), one with ``--tls`` (client-to-node TLS only, a key made by keytool). This
module starts both at once through ``scripts/cassandra-node`` and stops them when it is done.

Credentials are never printed: not in ``store.url``, ``repr``, errors or logs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster

from es_core import (
    NewEvent,
    StoreAuthenticationError,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from es_core.stores.cassandra import CassandraStore
from tests.cassandra_node import ScriptedNode, cassandra_url_or_skip, running, scripted_node

pytestmark = pytest.mark.cassandra

AUTH = scripted_node("auth", 6, "--auth")
TLS = scripted_node("tls", 7, "--tls")

USER = "es_tester_" + uuid.uuid4().hex[:8]  # a role per run: a reused node keeps old ones
SECRET = "c0rrect:h@rse/" + uuid.uuid4().hex[:8]  # needs percent-encoding; unique to this run
WRONG = "wr0ng-" + uuid.uuid4().hex[:8]
SUPERUSER = PlainTextAuthProvider("cassandra", "cassandra")  # the default role of a fresh --auth node


@pytest.fixture(scope="module")
def nodes() -> Iterator[None]:
    with running(AUTH, TLS):
        yield


def superuser(statements: list[str]) -> None:
    cluster = Cluster([AUTH.address], auth_provider=SUPERUSER, connect_timeout=10)
    try:
        session = cluster.connect()
        for cql in statements:
            session.execute(cql, timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def auth_url(nodes: None) -> Iterator[str]:
    """A keyspace on the auth node, created by the test role (which may create keyspaces, and so
    owns what it creates); the URL has no credentials."""
    escaped = SECRET.replace("'", "''")
    superuser([
        f"CREATE ROLE {USER} WITH LOGIN = true AND PASSWORD = '{escaped}'",
        f"GRANT CREATE ON ALL KEYSPACES TO {USER}",
        "CREATE ROLE IF NOT EXISTS es_nobody WITH LOGIN = true AND PASSWORD = 'nobody'",
    ])  # fmt: skip
    url = f"cassandra://{AUTH.address}/es_test_auth_{uuid.uuid4().hex[:8]}?replication_factor=1"
    yield url
    CassandraStore.drop(with_credentials(url, "cassandra", "cassandra"))


def cqlsh(node: ScriptedNode, statement: str, *flags: str, env: dict[str, str] | None = None) -> str:
    program = Path(sys.executable).with_name("cqlsh")
    if not program.exists():
        pytest.skip("cqlsh is not installed (the cassandra extra installs scylla-cqlsh)")
    done = subprocess.run(
        [str(program), *flags, node.address, "9042", "-e", statement],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def with_credentials(url: str, user: str, password: str | None = None) -> str:
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    return url.replace("cassandra://", f"cassandra://{login}@", 1)


def use(store: Any, stream: str) -> None:
    store.append(stream, [NewEvent(event_type="Tick", data={"n": 1}), NewEvent(event_type="Tick", data={"n": 2})])
    assert [e.version for e in store.read_stream(stream)] == [1, 2]
    assert store.settled_position() >= store.read_stream(stream)[-1].position


def assert_nothing_shows(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text and quote(secret, safe="") not in text


# -- authentication ----------------------------------------------------------------------------


def test_credentials_in_the_url_open_the_store_and_never_show(
    auth_url: str, sid: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the driver's own debug logging included
    store = open_store(with_credentials(auth_url, USER, SECRET))
    try:
        use(store, sid("auth"))
        assert_nothing_shows([store.url, repr(store), str(store)], SECRET, USER)
    finally:
        store.close()
    assert_nothing_shows([r.getMessage() for r in caplog.records], SECRET)


def test_credentials_from_the_environment_and_a_reopened_url(
    auth_url: str, sid: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ES_CASSANDRA_USERNAME", USER)
    monkeypatch.setenv("ES_CASSANDRA_PASSWORD", SECRET)
    store = open_store(auth_url)
    try:
        use(store, sid("env"))
        reopened = open_store(store.url)  # store.url holds no credentials: the environment supplies them
        reopened.close()
    finally:
        store.close()
    monkeypatch.delenv("ES_CASSANDRA_USERNAME")
    user_only = open_store(with_credentials(auth_url, USER))  # the password stays out of the URL
    user_only.close()


@pytest.mark.parametrize("how", ["url", "environment"])
def test_a_wrong_password_is_a_specific_error_that_shows_no_credentials(
    auth_url: str, how: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if how == "url":
        url = with_credentials(auth_url, USER, WRONG)
    else:
        url = auth_url
        monkeypatch.setenv("ES_CASSANDRA_USERNAME", USER)
        monkeypatch.setenv("ES_CASSANDRA_PASSWORD", WRONG)
    with pytest.raises(StoreAuthenticationError, match="user name or password is wrong") as info:
        open_store(url)
    error = info.value
    assert not isinstance(error, StoreUnavailableError)  # retrying will not help
    assert error.__cause__ is None and error.__suppress_context__
    assert_nothing_shows([str(error), repr(error)], WRONG, SECRET, USER)
    assert_nothing_shows([r.getMessage() for r in caplog.records], WRONG, SECRET)


def test_no_credentials_for_a_node_that_requires_them(auth_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ES_CASSANDRA_USERNAME", raising=False)
    monkeypatch.delenv("ES_CASSANDRA_PASSWORD", raising=False)
    with pytest.raises(StoreAuthenticationError, match="requires a user name and password"):
        open_store(auth_url)


def test_a_user_without_permissions_is_refused(auth_url: str) -> None:
    owner = open_store(with_credentials(auth_url, USER, SECRET))  # the keyspace exists
    owner.close()
    with pytest.raises(StoreAuthenticationError, match="lacks a permission") as info:
        open_store(with_credentials(auth_url, "es_nobody", "nobody") + "&create=false")
    assert "the user has no SELECT permission" in str(info.value)
    assert_nothing_shows([str(info.value), repr(info.value)], "es_nobody")


def test_select_and_modify_on_the_keyspace_are_enough_once_it_exists(auth_url: str, sid: Callable[..., str]) -> None:
    owner = open_store(with_credentials(auth_url, USER, SECRET))
    keyspace = owner.keyspace
    owner.close()
    app, password = f"{USER}_app", "app-" + uuid.uuid4().hex[:8]
    superuser([
        f"CREATE ROLE {app} WITH LOGIN = true AND PASSWORD = '{password}'",
        f"GRANT SELECT ON KEYSPACE {keyspace} TO {app}",
        f"GRANT MODIFY ON KEYSPACE {keyspace} TO {app}",
    ])  # fmt: skip
    store = open_store(with_credentials(auth_url, app, password) + "&create=false")
    try:
        use(store, sid("app"))
    finally:
        store.close()


def test_cqlsh_logs_in_from_a_credentials_file(auth_url: str, tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[PlainTextAuthProvider]\nusername = {USER}\npassword = {SECRET}\n")
    credentials.chmod(0o600)  # cqlsh ignores a credentials file that others may read
    # without a login the node would refuse cqlsh
    out = cqlsh(AUTH, "SELECT release_version FROM system.local;", "--credentials", str(credentials))
    assert "(1 rows)" in out


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_url(nodes: None) -> Iterator[str]:
    url = f"cassandra://{TLS.address}/es_test_tls_{uuid.uuid4().hex[:8]}?replication_factor=1"
    yield url
    CassandraStore.drop(f"{url}&tls_ca={TLS.ca_file}")


@pytest.mark.parametrize("verify", ["full", "ca"])
def test_tls_with_the_nodes_certificate(tls_url: str, sid: Callable[..., str], verify: str) -> None:
    store = open_store(f"{tls_url}&tls_ca={TLS.ca_file}&tls_verify={verify}")
    try:
        assert isinstance(store, CassandraStore) and store.tls
        use(store, sid("tls"))
        reopened = open_store(store.url)
        try:
            assert isinstance(reopened, CassandraStore) and reopened.tls
        finally:
            reopened.close()
    finally:
        store.close()


def test_tls_without_verification_still_encrypts(tls_url: str, sid: Callable[..., str]) -> None:
    # the node resets plain connections (below), so a store that works here speaks TLS
    store = open_store(f"{tls_url}&tls_verify=none")
    try:
        assert isinstance(store, CassandraStore) and store.tls and store.url.endswith("tls=true&tls_verify=none")
        use(store, sid("noverify"))
    finally:
        store.close()


def test_an_untrusted_certificate_is_a_clear_error(tls_url: str) -> None:
    # tls=true alone trusts the system's authorities, which never signed a scratch node's key
    with pytest.raises(StoreError, match="TLS handshake") as info:
        open_store(f"{tls_url}&tls=true&connect_timeout=5")
    assert not isinstance(info.value, StoreUnavailableError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_a_plain_connection_to_a_tls_node_says_to_turn_tls_on(tls_url: str) -> None:
    with pytest.raises(StoreUnavailableError, match="tls=true"):
        open_store(f"{tls_url}&connect_timeout=5")


def test_cqlsh_over_tls(nodes: None) -> None:
    out = cqlsh(TLS, "SELECT release_version FROM system.local;", "--ssl", env={"SSL_CERTFILE": str(TLS.ca_file)})
    assert "(1 rows)" in out


def test_tls_to_a_node_without_it_is_a_clear_error(nodes: None) -> None:
    url = cassandra_url_or_skip("es_test_tls_plain")
    with pytest.raises(StoreError, match="TLS handshake"):
        open_store(f"{url}&tls_ca={TLS.ca_file}&connect_timeout=5")

