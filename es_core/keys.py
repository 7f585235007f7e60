"""Data keys per subject (a member, in the downloads domain), wrapped by a key-encryption key.

Envelope encryption: each subject's personal fields are sealed with their own 256-bit data key;
the key store keeps that data key only *wrapped* (encrypted) by a key-encryption key (KEK) that
lives outside the store. Forgetting a subject deletes their wrapped data key and leaves a
tombstone: whatever was sealed with it can no longer be opened, anywhere it was copied.

Three parts, each replaceable:

* ``KeyEncryptionKey`` wraps and unwraps data keys. ``LocalKeyEncryptionKey`` does it in process
  with AES-GCM; an external KMS joins by implementing the same three members.
* ``KeyTable`` stores rows of bytes: one per subject, plus one check row that proves which KEK
  the table belongs to. Each backend has one in its own storage (``EventStore.key_table``).
* ``KeyStore`` puts them together: creates keys, caches unwrapped ones briefly, forgets, rotates.

Keys never appear in logs, reprs or exception messages.
"""

from __future__ import annotations

import abc
import base64
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from math import inf
from typing import NamedTuple, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import AlreadyForgottenError, InvalidInputError, KeyStoreError, SubjectForgottenError, UnknownSubjectError
from .validation import is_number

__all__ = [
    "KEK_VARIABLE", "KeyEncryptionKey", "KeyRow", "KeyStore", "KeyTable", "LocalKeyEncryptionKey", "MemoryKeyTable",
    "kek_from_environment",
]

_NONCE = 12
_CHECK = b"es-workbench key store check"
CACHE_ENTRIES = 10_000  # data keys a key store keeps in memory at most

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

KEK_VARIABLE = "ES_KEK"
"""The environment variable the command lines and scale-out workers read a key-encryption key
from, by default: its text form, ``key_id:<32 bytes in base64>`` (``LocalKeyEncryptionKey.to_text``)."""


@runtime_checkable
class KeyEncryptionKey(Protocol):
    """What a key store needs of its KEK. ``key_id`` names the key (never its secret) and is
    stored beside every wrapped key, so a rotation knows what is left to re-wrap."""

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key; ``KeyStoreError`` if ``wrapped`` was not made by this KEK for ``context``."""
        ...


class LocalKeyEncryptionKey:
    """A KEK held in process: 32 secret bytes and a name. AES-GCM with the subject as associated
    data, so a wrapped key moved to another subject's row does not unwrap."""

    def __init__(self, secret: bytes, key_id: str) -> None:
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise InvalidInputError("a key-encryption key is 32 bytes")
        if not isinstance(key_id, str) or not key_id:
            raise InvalidInputError("a key-encryption key needs a non-empty key_id")
        self._aead = AESGCM(secret)
        self._secret = secret
        self._key_id = key_id

    @classmethod
    def generate(cls, key_id: str) -> LocalKeyEncryptionKey:
        return cls(AESGCM.generate_key(bit_length=256), key_id)

    @classmethod
    def from_text(cls, text: str) -> LocalKeyEncryptionKey:
        """From ``key_id:base64-secret`` (the form ``to_text`` writes, e.g. kept in a secret manager
        and passed in an environment variable)."""
        key_id, _, secret = text.partition(":")
        try:
            raw = base64.b64decode(secret, validate=True)
        except ValueError:
            raw = b""
        if not key_id or len(raw) != 32:
            raise InvalidInputError("a key-encryption key's text form is 'key_id:<32 bytes in base64>'")
        return cls(raw, key_id)

    def to_text(self) -> str:
        """``key_id:<the secret in base64>``, for a secret manager or the ``ES_KEK`` variable:
        the one member that reveals the secret (``repr`` and every message hide it)."""
        return f"{self._key_id}:{base64.b64encode(self._secret).decode()}"

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except (InvalidTag, ValueError):
            raise KeyStoreError(f"key-encryption key {self._key_id!r} does not open this wrapped key") from None

    def __repr__(self) -> str:
        return f"LocalKeyEncryptionKey(key_id={self._key_id!r}, secret=<hidden>)"


def kek_from_environment(name: str = KEK_VARIABLE, environ: Mapping[str, str] | None = None) -> LocalKeyEncryptionKey:
    """The ``LocalKeyEncryptionKey`` whose text form the environment variable ``name`` holds
    (``environ``: ``os.environ`` by default). A key passed this way never appears on a command
    line or in a process listing. ``KeyStoreError`` naming the variable, never its value, when it
    is unset, empty or malformed. Whether it is the store's own KEK shows at ``EventStore.protect``."""
    if not is_variable_name(name):  # the value is not repeated: a key passed by mistake must not show
        raise InvalidInputError(
            "the name of a key-encryption key's environment variable is letters, digits and '_' (not the key)"
        )
    text = (os.environ if environ is None else environ).get(name, "")
    if not text:
        raise KeyStoreError(
            f"no key-encryption key: set the environment variable {name} to it ('key_id:<32 bytes in base64>')"
        )
    try:
        return LocalKeyEncryptionKey.from_text(text.strip())
    except InvalidInputError:
        raise KeyStoreError(
            f"the environment variable {name} does not hold a key-encryption key: its form is "
            "'key_id:<32 bytes in base64>'"
        ) from None


def is_variable_name(name: object) -> bool:
    """Whether ``name`` is a portable environment variable name (letters, digits, ``_``)."""
    return isinstance(name, str) and _VARIABLE_NAME.fullmatch(name) is not None


class KeyRow(NamedTuple):
    """A subject's row as stored: the KEK that wrapped the key, the wrapped key (None once
    forgotten), and when it was forgotten (microseconds since the epoch, None if not)."""

    kek_id: str
    wrapped: bytes | None
    forgotten_at: int | None


class KeyTable(abc.ABC):
    """Storage of wrapped keys, by scope (independent key stores sharing one table) and subject.
    Implementations store bytes and must make ``insert`` first-writer-wins across processes."""

    @abc.abstractmethod
    def read_check(self, scope: str) -> tuple[str, bytes] | None:
        """(KEK id, wrapped check value) of the scope, or None for a scope never used."""

    @abc.abstractmethod
    def write_check(self, scope: str, kek_id: str, wrapped: bytes) -> None: ...

    @abc.abstractmethod
    def read(self, scope: str, subject: str) -> KeyRow | None: ...

    @abc.abstractmethod
    def insert(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> KeyRow:
        """Store the row unless the subject has one; returns the row that is stored."""

    @abc.abstractmethod
    def destroy(self, scope: str, subject: str, at: int) -> None:
        """Delete the subject's wrapped key for good, keeping a tombstone stamped ``at``."""

    @abc.abstractmethod
    def rewrap(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> None:
        """Replace a live row's wrapped key (rotation); a forgotten row stays forgotten."""

    @abc.abstractmethod
    def rows(self, scope: str) -> Iterator[tuple[str, KeyRow]]: ...


class MemoryKeyTable(KeyTable):
    """A key table in process memory (the memory store's; also for tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, tuple[str, bytes]] = {}
        self._rows: dict[tuple[str, str], KeyRow] = {}

    def read_check(self, scope: str) -> tuple[str, bytes] | None:
        return self._checks.get(scope)

    def write_check(self, scope: str, kek_id: str, wrapped: bytes) -> None:
        self._checks[scope] = (kek_id, wrapped)

    def read(self, scope: str, subject: str) -> KeyRow | None:
        return self._rows.get((scope, subject))

    def insert(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> KeyRow:
        with self._lock:
            return self._rows.setdefault((scope, subject), KeyRow(kek_id, wrapped, None))

    def destroy(self, scope: str, subject: str, at: int) -> None:
        with self._lock:
            row = self._rows[(scope, subject)]
            self._rows[(scope, subject)] = KeyRow(row.kek_id, None, at)

    def rewrap(self, scope: str, subject: str, kek_id: str, wrapped: bytes) -> None:
        with self._lock:
            if self._rows[(scope, subject)].wrapped is not None:
                self._rows[(scope, subject)] = KeyRow(kek_id, wrapped, None)

    def rows(self, scope: str) -> Iterator[tuple[str, KeyRow]]:
        with self._lock:
            found = [(subject, row) for (s, subject), row in self._rows.items() if s == scope]
        return iter(found)


class KeyStore:
    """Data keys per subject in a ``KeyTable``, wrapped by ``kek``.

    ``previous``: older KEKs that may still wrap some keys (during and after an interrupted
    rotation). Unwrapped keys are cached for ``cache_seconds``: another process's ``forget`` is
    seen by this one within that time (its own at once)."""

    def __init__(
        self,
        table: KeyTable,
        kek: KeyEncryptionKey,
        *,
        scope: str = "default",
        previous: Sequence[KeyEncryptionKey] = (),
        cache_seconds: float = 30.0,
    ) -> None:
        if not isinstance(kek, KeyEncryptionKey):
            raise InvalidInputError(f"expected a KeyEncryptionKey, not {type(kek).__name__}")
        if not isinstance(scope, str) or not scope:
            raise InvalidInputError("a key store scope is a non-empty str")
        if not is_number(cache_seconds) or not 0 <= cache_seconds < inf:
            raise InvalidInputError(f"cache_seconds must be a finite number >= 0, not {cache_seconds!r}")
        self.table = table
        self.scope = scope
        self.cache_seconds = cache_seconds
        self._kek = kek
        self._keks = {k.key_id: k for k in (*previous, kek)}
        self._cache: dict[str, tuple[AESGCM, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyStore(scope={self.scope!r}, kek_id={self._kek.key_id!r})"

    @property
    def kek_id(self) -> str:
        return self._kek.key_id

    # -- start-up --------------------------------------------------------------------------

    def open(self, *, may_initialise: bool) -> None:
        """Check that this KEK opens the table's scope; initialise an unused scope only when
        ``may_initialise`` (the caller knows no sealed data can exist without it)."""
        check = self.table.read_check(self.scope)
        if check is None:
            if not may_initialise:
                raise KeyStoreError(
                    f"key store {self.scope!r} is empty, but the event log is not: if it was lost, restore it "
                    "(sealed fields cannot be read without it); if the log predates personal data, pass "
                    "initialise=True once"
                )
            self.table.write_check(self.scope, self._kek.key_id, self._kek.wrap(_CHECK, self._context("")))
            return
        kek_id, wrapped = check
        try:
            opened = self._unwrap(kek_id, wrapped, "")
        except KeyStoreError as exc:
            raise KeyStoreError(
                f"key store {self.scope!r} does not open with the key-encryption key given: {exc}"
            ) from None
        if opened != _CHECK:
            raise KeyStoreError(f"key store {self.scope!r} check value does not match")

    # -- keys --------------------------------------------------------------------------------

    def cipher(self, subject: str, *, create: bool) -> AESGCM | None:
        """The subject's data key as a cipher: None if forgotten (or, unless ``create``, never
        created). ``create`` makes a key for a subject without one (first writer wins)."""
        now = time.monotonic()
        cached = self._cache.get(subject)
        if cached is not None:
            if cached[1] > now:
                return cached[0]
            with self._lock:  # expired: a key forgotten meanwhile must not stay in memory
                self._cache.pop(subject, None)
        row = self.table.read(self.scope, subject)
        if row is None and create:
            fresh = AESGCM.generate_key(bit_length=256)
            wrapped = self._kek.wrap(fresh, self._context(subject))
            row = self.table.insert(self.scope, subject, self._kek.key_id, wrapped)
        if row is None or row.wrapped is None:
            return None
        aead = AESGCM(self._unwrap(row.kek_id, row.wrapped, subject))
        with self._lock:
            if len(self._cache) >= CACHE_ENTRIES:
                self._evict(now)
            self._cache[subject] = (aead, now + self.cache_seconds)
        return aead

    def _evict(self, now: float) -> None:
        """Drop expired keys, then the oldest, to keep the cache under ``CACHE_ENTRIES`` (a
        replay of every member must not hold every member's key). Called with the lock held."""
        for subject in [s for s, (_, until) in self._cache.items() if until <= now]:
            del self._cache[subject]
        while len(self._cache) >= CACHE_ENTRIES:
            del self._cache[next(iter(self._cache))]

    def sealing_cipher(self, subject: str) -> AESGCM:
        """The cipher to seal new personal fields with; ``SubjectForgottenError`` if forgotten."""
        aead = self.cipher(subject, create=True)
        if aead is None:
            raise SubjectForgottenError(f"subject {subject!r} is forgotten: their personal fields cannot be written")
        return aead

    def status(self, subject: str) -> str:
        """``"unknown"``, ``"live"`` or ``"forgotten"``."""
        row = self.table.read(self.scope, subject)
        return "unknown" if row is None else "live" if row.wrapped is not None else "forgotten"

    def forget(self, subject: str, at: int) -> None:
        """Destroy the subject's data key. ``UnknownSubjectError`` if they have none,
        ``AlreadyForgottenError`` if it is destroyed already; nothing changes then."""
        row = self.table.read(self.scope, subject)
        if row is None:
            raise UnknownSubjectError(f"subject {subject!r} has no data key: nothing personal of theirs is stored")
        if row.wrapped is None:
            raise AlreadyForgottenError(f"subject {subject!r} is forgotten already")
        with self._lock:
            self._cache.pop(subject, None)
        self.table.destroy(self.scope, subject, at)
        with self._lock:  # a reader may have cached the key between the pop and the destroy
            self._cache.pop(subject, None)

    def forgotten(self) -> dict[str, int]:
        """Forgotten subjects and when (microseconds since the epoch): the census."""
        return {s: row.forgotten_at for s, row in self.table.rows(self.scope) if row.forgotten_at is not None}

    def rotate(self, new_kek: KeyEncryptionKey) -> int:
        """Re-wrap every live data key (and the check value) under ``new_kek``, which becomes this
        store's KEK; the data keys, and so every sealed event, stay as they are. Idempotent and
        resumable: keys wrapped by ``new_kek`` already are skipped, so a rotation interrupted part
        way is finished by running it again (with the old KEK still among ``previous``).
        Returns how many keys were re-wrapped."""
        if not isinstance(new_kek, KeyEncryptionKey):
            raise InvalidInputError(f"expected a KeyEncryptionKey, not {type(new_kek).__name__}")
        self._refuse_another_key_under_a_known_id(new_kek)
        self._keks[new_kek.key_id] = new_kek
        done = 0
        for subject, row in self.table.rows(self.scope):
            if row.wrapped is None or row.kek_id == new_kek.key_id:
                continue
            data_key = self._unwrap(row.kek_id, row.wrapped, subject)
            self.table.rewrap(self.scope, subject, new_kek.key_id, new_kek.wrap(data_key, self._context(subject)))
            done += 1
        self.table.write_check(self.scope, new_kek.key_id, new_kek.wrap(_CHECK, self._context("")))
        self._kek = new_kek
        return done

    def _refuse_another_key_under_a_known_id(self, new_kek: KeyEncryptionKey) -> None:
        """Keys already wrapped under ``new_kek``'s id are skipped by a rotation, so that id must
        be ``new_kek`` itself (a resumed rotation), never another secret given the same id: that
        rotation would re-wrap nothing, and the store would no longer open."""
        check = self.table.read_check(self.scope)
        if check is not None and check[0] == new_kek.key_id:
            subject, wrapped = "", check[1]
        else:
            found = next(((s, r.wrapped) for s, r in self.table.rows(self.scope)
                          if r.wrapped is not None and r.kek_id == new_kek.key_id), None)
            if found is None:
                return  # a new id: nothing to compare
            subject, wrapped = found
        try:
            new_kek.unwrap(wrapped, self._context(subject))
        except Exception:  # a KEK's own error, whatever its kind: it is not the key behind that id
            raise InvalidInputError(
                f"key-encryption key {new_kek.key_id!r} is not the key this store's keys are wrapped with under "
                "that id: a new key-encryption key needs a new key_id"
            ) from None

    def _unwrap(self, kek_id: str, wrapped: bytes, subject: str) -> bytes:
        kek = self._keks.get(kek_id)
        if kek is None:
            raise KeyStoreError(
                f"key store {self.scope!r} holds keys wrapped by key-encryption key {kek_id!r}, which was not given"
            )
        return kek.unwrap(wrapped, self._context(subject))

    def _context(self, subject: str) -> bytes:
        return f"{self.scope}\x00{subject}".encode()
