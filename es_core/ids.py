"""Event ids: fresh ones ordered by time, ones derived from a request, and fast conversions.

A fresh id is random but time-ordered (RFC 9562 version 7), so a store's unique index on event
ids grows at its right edge. A derived id is a version-5 UUID of the request's parts, so a
retried request produces the same ids and the store recognises the retry.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid

__all__ = ["event_id_from", "time_ordered_id", "uuid_from_bytes", "uuid_from_int"]


def event_id_from(*parts: object) -> uuid.UUID:
    """A deterministic event id derived from request data (e.g. a request id and an index),
    so that a retried request produces the same ids and the store recognises the retry.

    Exactly ``uuid.uuid5(namespace, "\\x1f".join(map(str, parts)))``, computed without the
    generic constructor: a service derives one per event it records."""
    digest = _sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()
    return uuid_from_int(int.from_bytes(digest[:16]) & _V5_CLEAR | _V5_SET)


def time_ordered_id() -> uuid.UUID:
    """A fresh random event id whose leading 48 bits are the Unix time in milliseconds, in
    RFC 9562's version-7 layout (74 random bits follow). Ids made one after another sort
    near each other, so a store's unique index on event ids grows at its right edge instead
    of touching a random page per append."""
    ms = _time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF
    return uuid_from_int(ms << 80 | _random_bits(80) & _V7_RANDOM | _V7_MARKS)


def uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to be a 128-bit int, without the constructor's
    argument parsing (most of an id's cost on the append path). UUID keeps its state in two
    slots, set here as ``uuid`` itself sets them when it unpickles one."""
    made = new_uuid(uuid.UUID)
    set_int(made, value)
    set_is_safe(made, UNKNOWN_SAFETY)
    return made


def uuid_from_bytes(value: bytes) -> uuid.UUID:
    """``uuid.UUID(bytes=value)`` in a quarter of the time: reading the log makes one per event."""
    if len(value) != 16:
        raise ValueError(f"a UUID is 16 bytes, not {len(value)}")
    return uuid_from_int(int.from_bytes(value))


_NAMESPACE = uuid.UUID("6f1f0a52-3a51-4c49-9a4b-2f4f3b0d1e77")
_NAMESPACE_BYTES = _NAMESPACE.bytes
_V5_CLEAR = ~(0xF000 << 64 | 0xC000 << 48) & (1 << 128) - 1  # the version and variant bits...
_V5_SET = 5 << 76 | 0x8000 << 48  # ...set to version 5, RFC 4122 variant
_sha1 = hashlib.sha1
# The steps of uuid_from_int, named for the log's decoding loop, which takes them without a call
# (es_core.encoding). The slots' own descriptors cost half of object.__setattr__, which looks the
# name up first.
new_uuid = uuid.UUID.__new__
set_int = vars(uuid.UUID)["int"].__set__
set_is_safe = vars(uuid.UUID)["is_safe"].__set__
UNKNOWN_SAFETY = uuid.SafeUUID.unknown

# Event ids must be unique, not secret (they name events; they guard nothing), so their random
# bits come from a generator seeded from the OS once per process rather than a system call per
# id. Its C-level draw is atomic under the GIL (thread-safe), and a forked child reseeds, so
# parent and child never draw the same bits.
_ID_RANDOM = random.Random(os.urandom(32))
_random_bits = _ID_RANDOM.getrandbits
os.register_at_fork(after_in_child=lambda: _ID_RANDOM.seed(os.urandom(32)))
_time_ns = time.time_ns
_V7_MARKS = 0x7 << 76 | 0b10 << 62  # version 7 and the RFC variant
_V7_RANDOM = (1 << 80) - 1 & ~(0xF << 76 | 0b11 << 62)  # the low 80 bits less those marks: 74
