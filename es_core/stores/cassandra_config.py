"""What a ``cassandra://`` URL and the store's options mean, checked before anything connects.

* :func:`parse_url` turns a URL into constructor arguments; an unknown, repeated or malformed
  option raises ``InvalidStoreUrlError``.
* :func:`check_levels` refuses consistency levels that break the store's guarantees, and
  derives the default level from the serial level (the table in ``docs/cassandra.md``).
* :func:`credentials` finds the user name and password (URL or keywords, else the environment);
  :func:`tls_context` builds the TLS context. Neither ever puts a password in a message.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider

from ..errors import InvalidStoreUrlError
from .cassandra_schema import check_keyspace

OPTIONS: dict[str, tuple[type, Any]] = {  # name: (type, default)
    "replication_factor": (int, 3),
    "datacenter": (str, None),
    "consistency": (str, None),  # None: derived from serial_consistency (check_levels)
    "serial_consistency": (str, "LOCAL_SERIAL"),
    "bucket_width": (int, None),
    "feed_shards": (int, None),
    "connect_timeout": (float, 5.0),
    "request_timeout": (float, 10.0),
    "clock_skew_ms": (int, 100),
    "feed_lease_ms": (int, 1000),
    "create": (bool, True),
    "tls": (bool, None),  # None: off, unless tls_ca or tls_verify ask for it (tls_context)
    "tls_ca": (str, None),
    "tls_verify": (str, "full"),
}

USERNAME_VARIABLE = "ES_CASSANDRA_USERNAME"
PASSWORD_VARIABLE = "ES_CASSANDRA_PASSWORD"

_HOST = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\](?::(?P<port6>\d*))?|(?P<host>[A-Za-z0-9_.\-]+)(?::(?P<port>\d*))?")


def redact(url: str) -> str:
    """``url`` as it may appear in a message: everything up to its last ``@`` (the user name and
    password, even a password with an unencoded ``/``, ``?`` or ``#``) becomes ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def parse_url(url: str) -> dict[str, Any]:
    """``cassandra://[user[:password]@]h1[,h2...][:port]/keyspace?key=value&...`` as constructor
    arguments. The user name and password are percent-decoded. Unknown or malformed options
    raise ``InvalidStoreUrlError``; messages show the URL without its credentials."""
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme != "cassandra":
        raise InvalidStoreUrlError(f"not a cassandra:// URL: {shown!r}")
    if parts.fragment:
        raise InvalidStoreUrlError(f"a cassandra:// URL takes no fragment: {shown!r}")
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    if "@" in url and not at:  # a '/', '?' or '#' in the password ended the host part early
        raise InvalidStoreUrlError(
            f"cannot tell the credentials from the hosts in {shown!r}: percent-encode '@', ':', '/', '?' "
            "and '#' in a user name or password"
        )
    options: dict[str, Any] = {}
    if at:
        user, colon, password = userinfo.partition(":")
        if not user:
            raise InvalidStoreUrlError(f"a cassandra:// URL with credentials names a user: {shown!r}")
        options["username"] = unquote(user)
        if colon:
            options["password"] = unquote(password)
    hosts: list[str] = []
    ports: set[int] = set()
    for item in hostlist.split(","):
        match = _HOST.fullmatch(item)
        if match is None:
            raise InvalidStoreUrlError(
                f"bad host {item!r} in {shown!r} (expected host, host:port or [ipv6]:port; "
                "percent-encode '@', ':' and '/' in a user name or password)"
            )
        hosts.append(match["v6"] or match["host"])
        port = match["port6"] or match["port"]
        if port is not None:
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise InvalidStoreUrlError(f"bad port {port!r} in {shown!r}")
            ports.add(int(port))
    if len(ports) > 1:
        raise InvalidStoreUrlError(f"every host must use the same port: {shown!r}")
    keyspace = parts.path.strip("/")
    if not keyspace or "/" in keyspace:
        raise InvalidStoreUrlError(f"a cassandra:// URL names one keyspace as its path: {shown!r}")
    options.update({"hosts": tuple(hosts), "keyspace": check_keyspace(keyspace)})
    if ports:
        options["port"] = ports.pop()
    seen: set[str] = set()
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise InvalidStoreUrlError(f"unknown cassandra option {key!r} in {shown!r} (known: {', '.join(OPTIONS)})")
        if key in seen:
            raise InvalidStoreUrlError(f"option {key!r} given twice in {shown!r}")
        seen.add(key)
        options[key] = _option(key, value, shown)
    return options


def _option(key: str, value: str, shown: str) -> Any:
    kind = OPTIONS[key][0]
    try:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except ValueError:
        raise InvalidStoreUrlError(f"option {key}={value!r} in {shown!r} is not a {kind.__name__}") from None
    if not value:
        raise InvalidStoreUrlError(f"option {key} is empty in {shown!r}")
    return value


# -- consistency levels --------------------------------------------------------------------------

SERIAL_LEVELS = ("SERIAL", "LOCAL_SERIAL")

ALLOWED_LEVELS: dict[str, tuple[str, ...]] = {
    # serial_consistency: the levels `consistency` may take, the derived default first
    "LOCAL_SERIAL": ("LOCAL_QUORUM", "QUORUM", "EACH_QUORUM", "ALL"),
    "SERIAL": ("QUORUM", "EACH_QUORUM", "ALL"),
}
"""Every read and plain write of the store (stream heads, the event-id lookups that recognise
retries, the feed's announcements, fences and markers) and the commit of every conditional
write run at ``consistency``, so each must meet every other in at least one replica: only
quorum levels do. With ``SERIAL`` (writers in several data centres), a ``LOCAL_QUORUM`` in one
data centre need not meet another's, so only cluster-wide quorums are allowed."""


class Levels(NamedTuple):
    consistency: str
    serial_consistency: str

    @property
    def codes(self) -> tuple[int, int]:
        """The driver's codes for ``consistency`` and ``serial_consistency``."""
        return ConsistencyLevel.name_to_value[self.consistency], ConsistencyLevel.name_to_value[self.serial_consistency]


def default_consistency(serial_consistency: str) -> str:
    """The level ``consistency`` takes when it is not given."""
    return ALLOWED_LEVELS[serial_consistency][0]


def check_levels(consistency: str | None, serial_consistency: str, datacenter: str | None = None) -> Levels:
    """The effective levels, or ``InvalidStoreUrlError`` naming the option that breaks a guarantee.
    ``EACH_QUORUM`` needs a ``NetworkTopologyStrategy`` keyspace, so it needs ``datacenter``."""
    serial = str(serial_consistency).upper()
    if serial not in ALLOWED_LEVELS:
        raise InvalidStoreUrlError(
            f"serial_consistency must be one of {', '.join(SERIAL_LEVELS)}, not {serial_consistency!r}"
        )
    allowed = ALLOWED_LEVELS[serial]
    if consistency is None:
        return Levels(default_consistency(serial), serial)
    level = str(consistency).upper()
    if level not in ConsistencyLevel.name_to_value or level in SERIAL_LEVELS:
        raise InvalidStoreUrlError(f"consistency must be one of {', '.join(allowed)}, not {consistency!r}")
    if level not in allowed:
        if serial == "SERIAL" and level.startswith("LOCAL_"):
            why = (
                f"with serial_consistency=SERIAL (writers in several data centres), reads at {level} in one "
                "data centre can miss another's commits and announcements"
            )
        else:
            why = (
                f"reads at {level} can miss a write acknowledged by a quorum, which the feed and the "
                "event-id lookups that recognise retries rely on seeing"
            )
        raise InvalidStoreUrlError(
            f"consistency={level} breaks the store's guarantees: {why}; use {' or '.join(allowed)}"
        )
    if level == "EACH_QUORUM" and not datacenter:
        raise InvalidStoreUrlError(
            "consistency=EACH_QUORUM needs a keyspace replicated per data centre (NetworkTopologyStrategy): "
            "give datacenter=<the local data centre>"
        )
    return Levels(level, serial)


# -- credentials and TLS -------------------------------------------------------------------------


def credentials(
    username: str | None, password: str | None, environ: Mapping[str, str] = os.environ
) -> tuple[str, str] | None:
    """The user name and password to log in with: the given ones, else the environment's
    (``ES_CASSANDRA_USERNAME``, ``ES_CASSANDRA_PASSWORD``); None for a node without authentication.
    A user given without a password takes the password from the environment."""
    if username is None and password is None:
        username, password = environ.get(USERNAME_VARIABLE) or None, environ.get(PASSWORD_VARIABLE)
    elif password is None:
        password = environ.get(PASSWORD_VARIABLE)
    if username is None and password is None:
        return None
    if not username:
        raise InvalidStoreUrlError(f"a password was given without a user name (set {USERNAME_VARIABLE})")
    if not password:
        raise InvalidStoreUrlError(
            f"user {username!r} has no password: give it in the URL (user:password@host, percent-encoded) "
            f"or in {PASSWORD_VARIABLE}"
        )
    return username, password


TLS_VERIFY = ("full", "ca", "none")


def tls_context(tls: bool | None, tls_ca: str | None, tls_verify: str) -> ssl.SSLContext | None:
    """The TLS context for client-to-node encryption, or None without TLS. ``tls_ca`` or a
    ``tls_verify`` other than the default turn TLS on; ``tls=false`` with either is refused.

    ``tls_verify``: ``full`` checks the node's certificate chain and that it names the address
    connected to; ``ca`` checks the chain only; ``none`` encrypts without checking who answers."""
    verify = str(tls_verify).lower()
    if verify not in TLS_VERIFY:
        raise InvalidStoreUrlError(f"tls_verify must be one of {', '.join(TLS_VERIFY)}, not {tls_verify!r}")
    asked = tls_ca is not None or verify != "full"
    if tls is False and asked:
        raise InvalidStoreUrlError("tls_ca and tls_verify need TLS: drop tls=false")
    if not (tls or asked):
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls_ca is not None:
        if not os.path.isfile(tls_ca):
            raise InvalidStoreUrlError(f"tls_ca: no such file {tls_ca!r}")
        try:
            context.load_verify_locations(cafile=tls_ca)
        except ssl.SSLError as exc:
            raise InvalidStoreUrlError(f"tls_ca: {tls_ca!r} holds no PEM certificate ({exc})") from None
    context.check_hostname = verify == "full"
    if verify == "none":
        context.verify_mode = ssl.CERT_NONE
    return context


def security(
    username: str | None = None,
    password: str | None = None,
    tls: bool | None = None,
    tls_ca: str | None = None,
    tls_verify: str = "full",
    **_: Any,
) -> dict[str, Any]:
    """The driver ``Cluster``'s ``auth_provider`` and ``ssl_context`` for these options
    (the rest of a parsed URL is ignored)."""
    login = credentials(username, password)
    return {
        "auth_provider": PlainTextAuthProvider(*login) if login else None,
        "ssl_context": tls_context(tls, tls_ca, tls_verify),
    }
